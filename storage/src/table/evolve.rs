//! The table schema follows the data files: when a flush file brings
//! columns the table lacks (a topic gained a schema, a schema version added
//! fields), the table gets a new current schema before the snapshot that
//! adds the file.
//!
//! Columns are matched by field id, as Iceberg does. The new file's names
//! win (a renamed protobuf field is an Iceberg rename); the table's other
//! columns stay (a field removed from the protobuf schema keeps its old
//! values queryable) unless a new column took their name, in which case
//! they leave the current schema (older snapshots keep them). Integer and
//! floating widths only widen.

use std::collections::HashSet;
use std::sync::Arc;

use iceberg::spec::{
    ListType, MapType, NestedField, NestedFieldRef, PrimitiveType, Schema, StructType, Type,
};
use parquet::file::metadata::ParquetMetaData;

use crate::error::Result;

/// The Iceberg schema of a data file, from its footer (with its field ids).
pub fn file_schema(footer: &ParquetMetaData) -> Result<Schema> {
    let meta = footer.file_metadata();
    let arrow =
        parquet::arrow::parquet_to_arrow_schema(meta.schema_descr(), meta.key_value_metadata())?;
    Ok(iceberg::arrow::arrow_schema_to_schema(&arrow)?)
}

/// The table schema once files of `files` schemas (oldest first) are in
/// it; None when `current` already has every column as they are.
pub fn evolved(current: &Schema, files: &[Schema]) -> Result<Option<Schema>> {
    let mut merged = current.as_struct().clone();
    for f in files {
        merged = merge_struct(f.as_struct(), &merged);
    }
    if merged == *current.as_struct() {
        return Ok(None);
    }
    Ok(Some(
        Schema::builder()
            .with_fields(merged.fields().iter().cloned())
            .build()?,
    ))
}

fn merge_struct(new: &StructType, old: &StructType) -> StructType {
    let mut fields: Vec<NestedFieldRef> = new
        .fields()
        .iter()
        .map(|f| match old.field_by_id(f.id) {
            Some(o) => merge_field(f, o),
            None => f.clone(),
        })
        .collect();
    let names: HashSet<&str> = new.fields().iter().map(|f| f.name.as_str()).collect();
    fields.extend(
        old.fields()
            .iter()
            .filter(|o| new.field_by_id(o.id).is_none() && !names.contains(o.name.as_str()))
            .cloned(),
    );
    StructType::new(fields)
}

fn merge_field(new: &NestedFieldRef, old: &NestedFieldRef) -> NestedFieldRef {
    let ty = merge_type(&new.field_type, &old.field_type);
    if ty == *new.field_type {
        return new.clone();
    }
    let mut f: NestedField = (**new).clone();
    f.field_type = Box::new(ty);
    Arc::new(f)
}

fn merge_type(new: &Type, old: &Type) -> Type {
    use PrimitiveType as P;
    match (new, old) {
        (Type::Struct(n), Type::Struct(o)) => Type::Struct(merge_struct(n, o)),
        (Type::List(n), Type::List(o)) if n.element_field.id == o.element_field.id => Type::List(
            ListType::new(merge_field(&n.element_field, &o.element_field)),
        ),
        (Type::Map(n), Type::Map(o))
            if n.key_field.id == o.key_field.id && n.value_field.id == o.value_field.id =>
        {
            Type::Map(MapType::new(
                merge_field(&n.key_field, &o.key_field),
                merge_field(&n.value_field, &o.value_field),
            ))
        }
        (Type::Primitive(P::Int), Type::Primitive(P::Long)) => Type::Primitive(P::Long),
        (Type::Primitive(P::Float), Type::Primitive(P::Double)) => Type::Primitive(P::Double),
        _ => new.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(id: i32, name: &str, ty: Type) -> NestedFieldRef {
        Arc::new(NestedField::optional(id, name, ty))
    }

    fn schema(fields: Vec<NestedFieldRef>) -> Schema {
        Schema::builder().with_fields(fields).build().unwrap()
    }

    #[test]
    fn files_add_and_rename_columns_and_keep_removed_ones() {
        let long = Type::Primitive(PrimitiveType::Long);
        let int = Type::Primitive(PrimitiveType::Int);
        let bin = Type::Primitive(PrimitiveType::Binary);
        let string = Type::Primitive(PrimitiveType::String);
        let table = schema(vec![
            field(1, "offset", long.clone()),
            field(7, "value", bin.clone()),
        ]);
        assert!(evolved(&table, std::slice::from_ref(&table))
            .unwrap()
            .is_none());
        let v1 = schema(vec![
            field(1, "offset", long.clone()),
            field(
                12,
                "value",
                Type::Struct(StructType::new(vec![
                    field(13, "id", string.clone()),
                    field(14, "qty", long.clone()),
                ])),
            ),
            field(7, "value_raw", bin.clone()),
        ]);
        let t1 = evolved(&table, &[v1]).unwrap().unwrap();
        assert_eq!(t1.field_by_id(7).unwrap().name, "value_raw");
        assert_eq!(t1.field_by_name("value").unwrap().id, 12);
        // v2 renames id to order_id, drops qty, and writes a narrower
        // column under an existing id (which keeps the wider type).
        let v2 = schema(vec![
            field(1, "offset", int),
            field(
                12,
                "value",
                Type::Struct(StructType::new(vec![
                    field(13, "order_id", string.clone()),
                    field(15, "note", string),
                ])),
            ),
            field(7, "value_raw", bin),
        ]);
        let t2 = evolved(&t1, &[v2]).unwrap().unwrap();
        assert_eq!(*t2.field_by_id(1).unwrap().field_type, long);
        assert_eq!(t2.field_by_id(13).unwrap().name, "order_id");
        assert!(
            t2.field_by_id(14).is_some(),
            "removed fields stay queryable"
        );
        assert!(t2.field_by_id(15).is_some());
    }
}
