-- How an event's body is stored: 0 as received, 1 compressed with DEFLATE
-- (RFC 1951, raw). A SalesIQ body of 1.4 KB with its headers made a row
-- just over half a 4 KiB page, so every event took a page of its own;
-- compressed, three fit in one.
ALTER TABLE events ADD COLUMN body_codec INTEGER NOT NULL DEFAULT 0;
