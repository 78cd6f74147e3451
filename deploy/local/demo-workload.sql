-- One step of deploy/local/demo's write load, run as `psql -v step=N -f demo-workload.sql`: a
-- transaction that places an order and moves the oldest open one along, and every few steps
-- also signs up a customer, changes one, or removes a shipped order, so that creates, updates
-- and deletes all show up in the demo.
SELECT :step % 5 = 0 AS new_customer,
       :step % 4 = 2 AS edit_customer,
       :step % 3 = 0 AS drop_order
\gset

BEGIN;

\if :new_customer
INSERT INTO demo.customers (name, email)
VALUES ('Customer ' || :step, 'customer' || :step || '@example.com');
\endif

INSERT INTO demo.orders (customer_id, amount)
SELECT id, round((5 + random() * 195)::numeric, 2)
FROM demo.customers
ORDER BY random()
LIMIT 1;

UPDATE demo.orders
SET status = CASE status WHEN 'new' THEN 'paid' ELSE 'shipped' END
WHERE id = (SELECT min(id) FROM demo.orders WHERE status IN ('new', 'paid'));

\if :edit_customer
UPDATE demo.customers
SET email = split_part(email, '@', 1) || '+' || :step || '@example.org'
WHERE id = (SELECT id FROM demo.customers ORDER BY random() LIMIT 1);
\endif

\if :drop_order
DELETE FROM demo.orders
WHERE id = (SELECT min(id) FROM demo.orders WHERE status = 'shipped');
\endif

COMMIT;
