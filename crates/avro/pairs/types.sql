-- The user-defined types of cases.txt; the tests' fake catalog (crates/avro/src/output_pairs.rs's
-- neighbour, output_types.rs) describes the same ones.
CREATE TYPE pair AS (a int4, b text);
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
CREATE TYPE floatrange AS RANGE (subtype = float8);
CREATE TYPE float4range AS RANGE (subtype = float4);
CREATE TYPE textrange AS RANGE (subtype = text, collation = "C");
CREATE TYPE pairrange AS RANGE (subtype = pair);
CREATE TYPE withdropped AS (a int4, gone text, b text);
ALTER TYPE withdropped DROP ATTRIBUTE gone;
CREATE TYPE inner_most AS (r textrange, m mood, d posint, q tsquery);
CREATE TYPE outer_most AS (i inner_most, l inner_most[], p pair);
CREATE TYPE everything AS (
  b bool, i2 int2, i8 int8, f4 float4, f8 float8, n numeric, m money, t text, c "char",
  nm name, vc varchar(5), bp char(3), by bytea, u uuid, d date, tm time, ttz timetz,
  ts timestamp, tstz timestamptz, iv interval, j json, jb jsonb, jp jsonpath, x xml,
  bt bit(3), vb varbit, ip inet, cd cidr, mac macaddr, mac8 macaddr8, o oid, x8 xid8,
  l pg_lsn, ti tid, pt point, bx box, tv tsvector, snap pg_snapshot, hs hstore, ci citext,
  e mood, dp posint, pr pair, r int4range, mr int4multirange, a int4[], ta text[], pa pair[]
);
