-- TechEmpower's World table: 10000 rows with random numbers in 1..10000.
CREATE TABLE world (
    id serial PRIMARY KEY,
    randomnumber integer NOT NULL DEFAULT 0
);
INSERT INTO world (id, randomnumber)
SELECT i, floor(random() * 10000 + 1)::int FROM generate_series(1, 10000) AS i;
SELECT setval('world_id_seq', 10000);
