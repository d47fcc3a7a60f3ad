# The city side: `laterne ingest` (broker -> database, with the end-to-end `stored` report),
# the database layer and its migrations, derived values, `laterne export`, the broker ACL.
