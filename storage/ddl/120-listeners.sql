-- A broker's listeners, as Kafka's `advertised.listeners`: the address
-- clients of each named listener are told to connect to. Keyed by the
-- incarnation, so a new run's rows are invisible until its registration
-- holds the id, and an old run's are dropped when it is replaced.
-- `broker_registrations.host`/`port` stay the first listener's (what a
-- broker from before listeners had as its only one).

CREATE TABLE IF NOT EXISTS broker_listeners (
    broker_id        INTEGER NOT NULL,
    incarnation      TEXT NOT NULL,
    name             TEXT NOT NULL,
    host             TEXT NOT NULL,
    port             INTEGER NOT NULL,
    PRIMARY KEY (broker_id, incarnation, name)
);
