-- The registry keeps its schemas in the stack's PostgreSQL, as in deploy/local/stack.
CREATE DATABASE apicurio OWNER sluice;
