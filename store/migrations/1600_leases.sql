-- Leader leases (issue 21, several chat server nodes on one store): a job meant for one node at a time (the
-- daily purge, the PBX's AMI connection) runs on the node holding its lease, renewed well before
-- expires_at; once a lease has expired (its node died or stopped without releasing it) another node takes it.
-- Not personal data: a job's name, a node id (host-pid-random) and a time.
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
