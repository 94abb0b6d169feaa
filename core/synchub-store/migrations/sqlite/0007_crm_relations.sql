-- The CRM as relations people query (docs/store.md): views over the stored
-- documents, so they are in step with every page's transaction by
-- construction (a page that commits is in them, a rolled-back one never
-- was), plus expression indexes for the obvious lookups. Nothing is moved
-- or rewritten: a store from any earlier release keeps every row.
-- SQLite: documents are JSON text read with json1; money stays exact text
-- (SQLite has no decimal type); times are RFC 3339 UTC text.

-- Dead letters replayed with `synchub dead-letters replay`: when, and
-- whether the item then landed.
ALTER TABLE dead_letter ADD COLUMN replayed_at TEXT;
ALTER TABLE dead_letter ADD COLUMN resolved_at TEXT;

CREATE INDEX crm_record_merged ON crm_record (merged_into) WHERE merged_into IS NOT NULL;
-- Any email or phone of a contact (E.164) is found through the exact-match
-- keys, indexed by match_key's primary key (`email:…`, `phone:+886…`); an
-- expression index per primary value would parse every document again on
-- every write for a lookup the keys already serve.
CREATE INDEX crm_contact_name ON crm_record (json_extract(data, '$.full_name'))
    WHERE kind = 'contact';
CREATE INDEX crm_order_customer ON crm_record (json_extract(data, '$.customer.crm_id'))
    WHERE kind = 'order';
CREATE INDEX crm_invoice_customer ON crm_record (json_extract(data, '$.customer.crm_id'))
    WHERE kind = 'invoice';

-- Each merged-away contact id and the live contact it ended up in (merges
-- chain: A into B, later B into C gives A -> C). Only merged rows are read.
CREATE VIEW contact_alias AS
WITH RECURSIVE up (id, survivor, depth) AS (
    SELECT id, merged_into, 1 FROM crm_record
    WHERE merged_into IS NOT NULL
    UNION ALL
    SELECT up.id, r.merged_into, up.depth + 1
    FROM up JOIN crm_record r ON r.id = up.survivor
    WHERE r.merged_into IS NOT NULL AND up.depth < 64
)
SELECT u.id, u.survivor FROM up u
WHERE NOT EXISTS (
    SELECT 1 FROM crm_record r WHERE r.id = u.survivor AND r.merged_into IS NOT NULL
);

-- Every id that stands for a live contact: its own, and those merged into it.
CREATE VIEW contact_ids AS
SELECT id AS contact_id, id FROM crm_record
WHERE kind = 'contact' AND deleted = 0 AND merged_into IS NULL
UNION ALL
SELECT a.survivor AS contact_id, a.id FROM contact_alias a
JOIN crm_record s ON s.id = a.survivor AND s.deleted = 0;

CREATE VIEW contacts AS
SELECT
    id,
    COALESCE(
        NULLIF(json_extract(data, '$.full_name'), ''),
        NULLIF(trim(COALESCE(json_extract(data, '$.given_name'), '') || ' '
            || COALESCE(json_extract(data, '$.family_name'), '')), ''),
        json_extract(data, '$.emails[0]')
    ) AS name,
    json_extract(data, '$.full_name') AS full_name,
    json_extract(data, '$.given_name') AS given_name,
    json_extract(data, '$.family_name') AS family_name,
    lower(json_extract(data, '$.emails[0]')) AS email,
    json_extract(data, '$.phones[0]') AS phone,
    json_extract(data, '$.emails') AS emails,
    json_extract(data, '$.phones') AS phones,
    json_extract(data, '$.company') AS company,
    json_extract(data, '$.title') AS title,
    json_extract(data, '$.addresses') AS addresses,
    json_extract(data, '$.tags') AS tags,
    json_extract(data, '$.birth_date') AS birth_date,
    json_extract(data, '$.accepts_marketing') AS accepts_marketing,
    json_extract(data, '$.custom') AS custom,
    data AS document,
    version,
    created_at,
    updated_at
FROM crm_record
WHERE kind = 'contact' AND deleted = 0 AND merged_into IS NULL;

CREATE VIEW companies AS
SELECT
    id,
    json_extract(data, '$.name') AS name,
    json_extract(data, '$.domain') AS domain,
    lower(json_extract(data, '$.emails[0]')) AS email,
    json_extract(data, '$.phones[0]') AS phone,
    json_extract(data, '$.tax_id') AS tax_id,
    json_extract(data, '$.addresses') AS addresses,
    json_extract(data, '$.tags') AS tags,
    json_extract(data, '$.custom') AS custom,
    data AS document,
    version,
    created_at,
    updated_at
FROM crm_record
WHERE kind = 'company' AND deleted = 0 AND merged_into IS NULL;

-- contact_id: the live contact the order belongs to (following merges);
-- customer_id: the CRM id the order was stored with (indexed).
CREATE VIEW orders AS
SELECT
    o.id,
    json_extract(o.data, '$.number') AS number,
    COALESCE(a.survivor, json_extract(o.data, '$.customer.crm_id')) AS contact_id,
    json_extract(o.data, '$.customer.crm_id') AS customer_id,
    json_extract(o.data, '$.customer.external_id') AS customer_external_id,
    json_extract(o.data, '$.customer.email') AS customer_email,
    json_extract(o.data, '$.customer.name') AS customer_name,
    json_extract(o.data, '$.status') AS status,
    json_extract(o.data, '$.financial_status') AS financial_status,
    json_extract(o.data, '$.fulfillment_status') AS fulfillment_status,
    json_extract(o.data, '$.currency') AS currency,
    json_extract(o.data, '$.subtotal') AS subtotal,
    json_extract(o.data, '$.tax_total') AS tax_total,
    json_extract(o.data, '$.total') AS total,
    json_extract(o.data, '$.placed_at') AS placed_at,
    json_extract(o.data, '$.updated_at') AS source_updated_at,
    o.data AS document,
    o.version,
    o.created_at,
    o.updated_at
FROM crm_record o
LEFT JOIN contact_alias a ON a.id = json_extract(o.data, '$.customer.crm_id')
WHERE o.kind = 'order' AND o.deleted = 0;

CREATE VIEW order_lines AS
SELECT
    o.id AS order_id,
    l.key + 1 AS line_no,
    json_extract(l.value, '$.sku') AS sku,
    json_extract(l.value, '$.description') AS description,
    json_extract(l.value, '$.quantity') AS quantity,
    json_extract(l.value, '$.unit_price') AS unit_price,
    json_extract(l.value, '$.tax') AS tax,
    json_extract(l.value, '$.total') AS total,
    json_extract(o.data, '$.currency') AS currency
FROM crm_record o, json_each(o.data, '$.lines') l
WHERE o.kind = 'order' AND o.deleted = 0;

CREATE VIEW invoices AS
SELECT
    i.id,
    json_extract(i.data, '$.number') AS number,
    COALESCE(a.survivor, json_extract(i.data, '$.customer.crm_id')) AS contact_id,
    json_extract(i.data, '$.customer.crm_id') AS customer_id,
    json_extract(i.data, '$.customer.external_id') AS customer_external_id,
    json_extract(i.data, '$.customer.email') AS customer_email,
    json_extract(i.data, '$.order_crm_id') AS order_id,
    json_extract(i.data, '$.status') AS status,
    json_extract(i.data, '$.currency') AS currency,
    json_extract(i.data, '$.total') AS total,
    json_extract(i.data, '$.amount_due') AS amount_due,
    json_extract(i.data, '$.issued_on') AS issued_on,
    json_extract(i.data, '$.due_on') AS due_on,
    i.data AS document,
    i.version,
    i.created_at,
    i.updated_at
FROM crm_record i
LEFT JOIN contact_alias a ON a.id = json_extract(i.data, '$.customer.crm_id')
WHERE i.kind = 'invoice' AND i.deleted = 0;

CREATE VIEW activities AS
SELECT
    id,
    json_extract(data, '$.kind') AS kind,
    json_extract(data, '$.subject') AS subject,
    json_extract(data, '$.snippet') AS snippet,
    json_extract(data, '$.occurred_at') AS occurred_at,
    json_extract(data, '$.message_id') AS message_id,
    json_extract(data, '$.thread_id') AS thread_id,
    json_extract(data, '$.participants') AS participants,
    data AS document,
    version,
    created_at,
    updated_at
FROM crm_record
WHERE kind = 'activity' AND deleted = 0;

-- Which live contacts took part in an activity: a participant address that
-- is one of the contact's exact-match email keys (keys move with merges).
CREATE VIEW activity_contacts AS
SELECT DISTINCT k.crm_id AS contact_id, r.id AS activity_id,
    json_extract(p.value, '$.role') AS role
FROM crm_record r, json_each(r.data, '$.participants') p
JOIN match_key k ON k.kind = 'contact'
    AND k.key = 'email:' || lower(trim(json_extract(p.value, '$.email')))
WHERE r.kind = 'activity' AND r.deleted = 0;

-- Each linked system's current copy of each live contact: the last synced
-- snapshot (the fields as that system holds them), its id there and when.
CREATE VIEW contact_sources AS
SELECT
    c.contact_id,
    l.connection AS system,
    l.external_id,
    l.snapshot,
    l.remote_version,
    l.remote_updated_at,
    l.updated_at AS last_synced_at,
    l.deleted
FROM id_link l
JOIN contact_ids c ON c.id = l.crm_id
WHERE l.object = 'contact';

-- Orders, invoices and activities of each live contact; order by `at`.
CREATE VIEW contact_timeline AS
SELECT c.contact_id,
    COALESCE(json_extract(o.data, '$.placed_at'), json_extract(o.data, '$.updated_at'),
        o.created_at) AS at,
    'order' AS kind,
    o.id AS record_id,
    json_extract(o.data, '$.number') AS title,
    json_extract(o.data, '$.status') AS status,
    json_extract(o.data, '$.total') AS amount,
    json_extract(o.data, '$.currency') AS currency
FROM contact_ids c
JOIN crm_record o ON o.kind = 'order' AND json_extract(o.data, '$.customer.crm_id') = c.id
WHERE o.deleted = 0
UNION ALL
SELECT c.contact_id,
    COALESCE(json_extract(i.data, '$.issued_on') || 'T00:00:00Z', i.created_at) AS at,
    'invoice' AS kind,
    i.id AS record_id,
    json_extract(i.data, '$.number') AS title,
    json_extract(i.data, '$.status') AS status,
    json_extract(i.data, '$.total') AS amount,
    json_extract(i.data, '$.currency') AS currency
FROM contact_ids c
JOIN crm_record i ON i.kind = 'invoice' AND json_extract(i.data, '$.customer.crm_id') = c.id
WHERE i.deleted = 0
UNION ALL
SELECT ac.contact_id,
    COALESCE(json_extract(r.data, '$.occurred_at'), r.created_at) AS at,
    'activity' AS kind,
    r.id AS record_id,
    json_extract(r.data, '$.subject') AS title,
    json_extract(r.data, '$.kind') AS status,
    NULL AS amount,
    NULL AS currency
FROM activity_contacts ac
JOIN crm_record r ON r.id = ac.activity_id;
