-- Run once by the postgres image on an empty data volume: the prediction store's database
-- beside Prefect's (POSTGRES_DB=prefect). The API and flows create their tables themselves.
CREATE DATABASE predictions;
