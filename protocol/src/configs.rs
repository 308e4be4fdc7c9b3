//! The codes of the config APIs (DescribeConfigs, AlterConfigs,
//! IncrementalAlterConfigs), shared by the broker that answers them and the
//! CLI that asks.

/// ConfigResource type of a topic.
pub const RESOURCE_TOPIC: i8 = 2;
/// ConfigResource type of a broker.
pub const RESOURCE_BROKER: i8 = 4;

/// ConfigSource: set on the topic itself.
pub const SOURCE_DYNAMIC_TOPIC: i8 = 1;
/// ConfigSource: set as the cluster-wide default of every broker.
pub const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
/// ConfigSource: set in the broker's own settings.
pub const SOURCE_STATIC_BROKER: i8 = 4;
/// ConfigSource: nobody set it.
pub const SOURCE_DEFAULT: i8 = 5;

/// IncrementalAlterConfigs operation: set a value.
pub const OP_SET: i8 = 0;
/// IncrementalAlterConfigs operation: remove the value (back to its default).
pub const OP_DELETE: i8 = 1;
/// IncrementalAlterConfigs operation: add items to a list config.
pub const OP_APPEND: i8 = 2;
/// IncrementalAlterConfigs operation: remove items from a list config.
pub const OP_SUBTRACT: i8 = 3;
