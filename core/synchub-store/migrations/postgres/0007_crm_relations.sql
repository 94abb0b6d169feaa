-- The CRM as relations people query (docs/store.md): views over the stored
-- documents, so they are in step with every page's transaction by
-- construction (a page that commits is in them, a rolled-back one never
-- was), plus expression indexes for the obvious lookups. Nothing is moved
-- or rewritten: a store from any earlier release keeps every row.
-- PostgreSQL: documents are jsonb, times timestamptz, money numeric (cast
-- from the stored text, which is exact: no float on the way).

-- Dead letters replayed with `synchub dead-letters replay`: when, and
-- whether the item then landed.
ALTER TABLE dead_letter ADD COLUMN replayed_at TEXT;
ALTER TABLE dead_letter ADD COLUMN resolved_at TEXT;

CREATE INDEX crm_record_merged ON crm_record (merged_into) WHERE merged_into IS NOT NULL;
-- Any email or phone of a contact (E.164) is found through the exact-match
-- keys, indexed by match_key's primary key (`email:…`, `phone:+886…`); an
-- expression index per primary value would parse every document again on
-- every write for a lookup the keys already serve.
CREATE INDEX crm_contact_name ON crm_record (((data::jsonb) ->> 'full_name'))
    WHERE kind = 'contact';
CREATE INDEX crm_order_customer ON crm_record (((data::jsonb) -> 'customer' ->> 'crm_id'))
    WHERE kind = 'order';
CREATE INDEX crm_invoice_customer ON crm_record (((data::jsonb) -> 'customer' ->> 'crm_id'))
    WHERE kind = 'invoice';
CREATE INDEX crm_activity_participants ON crm_record
    USING gin (((data::jsonb) -> 'participants') jsonb_path_ops)
    WHERE kind = 'activity';

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
        NULLIF((data::jsonb) ->> 'full_name', ''),
        NULLIF(trim(COALESCE((data::jsonb) ->> 'given_name', '') || ' '
            || COALESCE((data::jsonb) ->> 'family_name', '')), ''),
        (data::jsonb) -> 'emails' ->> 0
    ) AS name,
    (data::jsonb) ->> 'full_name' AS full_name,
    (data::jsonb) ->> 'given_name' AS given_name,
    (data::jsonb) ->> 'family_name' AS family_name,
    lower((data::jsonb) -> 'emails' ->> 0) AS email,
    (data::jsonb) -> 'phones' ->> 0 AS phone,
    (data::jsonb) -> 'emails' AS emails,
    (data::jsonb) -> 'phones' AS phones,
    (data::jsonb) ->> 'company' AS company,
    (data::jsonb) ->> 'title' AS title,
    (data::jsonb) -> 'addresses' AS addresses,
    (data::jsonb) -> 'tags' AS tags,
    ((data::jsonb) ->> 'birth_date')::date AS birth_date,
    ((data::jsonb) ->> 'accepts_marketing')::boolean AS accepts_marketing,
    (data::jsonb) -> 'custom' AS custom,
    data::jsonb AS document,
    version,
    created_at::timestamptz AS created_at,
    updated_at::timestamptz AS updated_at
FROM crm_record
WHERE kind = 'contact' AND deleted = 0 AND merged_into IS NULL;

CREATE VIEW companies AS
SELECT
    id,
    (data::jsonb) ->> 'name' AS name,
    (data::jsonb) ->> 'domain' AS domain,
    lower((data::jsonb) -> 'emails' ->> 0) AS email,
    (data::jsonb) -> 'phones' ->> 0 AS phone,
    (data::jsonb) ->> 'tax_id' AS tax_id,
    (data::jsonb) -> 'addresses' AS addresses,
    (data::jsonb) -> 'tags' AS tags,
    (data::jsonb) -> 'custom' AS custom,
    data::jsonb AS document,
    version,
    created_at::timestamptz AS created_at,
    updated_at::timestamptz AS updated_at
FROM crm_record
WHERE kind = 'company' AND deleted = 0 AND merged_into IS NULL;

-- contact_id: the live contact the order belongs to (following merges);
-- customer_id: the CRM id the order was stored with (indexed).
CREATE VIEW orders AS
SELECT
    o.id,
    (o.data::jsonb) ->> 'number' AS number,
    COALESCE(a.survivor, (o.data::jsonb) -> 'customer' ->> 'crm_id') AS contact_id,
    (o.data::jsonb) -> 'customer' ->> 'crm_id' AS customer_id,
    (o.data::jsonb) -> 'customer' ->> 'external_id' AS customer_external_id,
    (o.data::jsonb) -> 'customer' ->> 'email' AS customer_email,
    (o.data::jsonb) -> 'customer' ->> 'name' AS customer_name,
    (o.data::jsonb) ->> 'status' AS status,
    (o.data::jsonb) ->> 'financial_status' AS financial_status,
    (o.data::jsonb) ->> 'fulfillment_status' AS fulfillment_status,
    (o.data::jsonb) ->> 'currency' AS currency,
    ((o.data::jsonb) ->> 'subtotal')::numeric AS subtotal,
    ((o.data::jsonb) ->> 'tax_total')::numeric AS tax_total,
    ((o.data::jsonb) ->> 'total')::numeric AS total,
    ((o.data::jsonb) ->> 'placed_at')::timestamptz AS placed_at,
    ((o.data::jsonb) ->> 'updated_at')::timestamptz AS source_updated_at,
    o.data::jsonb AS document,
    o.version,
    o.created_at::timestamptz AS created_at,
    o.updated_at::timestamptz AS updated_at
FROM crm_record o
LEFT JOIN contact_alias a ON a.id = (o.data::jsonb) -> 'customer' ->> 'crm_id'
WHERE o.kind = 'order' AND o.deleted = 0;

CREATE VIEW order_lines AS
SELECT
    o.id AS order_id,
    l.n AS line_no,
    l.line ->> 'sku' AS sku,
    l.line ->> 'description' AS description,
    (l.line ->> 'quantity')::numeric AS quantity,
    (l.line ->> 'unit_price')::numeric AS unit_price,
    (l.line ->> 'tax')::numeric AS tax,
    (l.line ->> 'total')::numeric AS total,
    (o.data::jsonb) ->> 'currency' AS currency
FROM crm_record o
CROSS JOIN LATERAL jsonb_array_elements(
    COALESCE((o.data::jsonb) -> 'lines', '[]'::jsonb)
) WITH ORDINALITY AS l (line, n)
WHERE o.kind = 'order' AND o.deleted = 0;

CREATE VIEW invoices AS
SELECT
    i.id,
    (i.data::jsonb) ->> 'number' AS number,
    COALESCE(a.survivor, (i.data::jsonb) -> 'customer' ->> 'crm_id') AS contact_id,
    (i.data::jsonb) -> 'customer' ->> 'crm_id' AS customer_id,
    (i.data::jsonb) -> 'customer' ->> 'external_id' AS customer_external_id,
    (i.data::jsonb) -> 'customer' ->> 'email' AS customer_email,
    (i.data::jsonb) ->> 'order_crm_id' AS order_id,
    (i.data::jsonb) ->> 'status' AS status,
    (i.data::jsonb) ->> 'currency' AS currency,
    ((i.data::jsonb) ->> 'total')::numeric AS total,
    ((i.data::jsonb) ->> 'amount_due')::numeric AS amount_due,
    ((i.data::jsonb) ->> 'issued_on')::date AS issued_on,
    ((i.data::jsonb) ->> 'due_on')::date AS due_on,
    i.data::jsonb AS document,
    i.version,
    i.created_at::timestamptz AS created_at,
    i.updated_at::timestamptz AS updated_at
FROM crm_record i
LEFT JOIN contact_alias a ON a.id = (i.data::jsonb) -> 'customer' ->> 'crm_id'
WHERE i.kind = 'invoice' AND i.deleted = 0;

CREATE VIEW activities AS
SELECT
    id,
    (data::jsonb) ->> 'kind' AS kind,
    (data::jsonb) ->> 'subject' AS subject,
    (data::jsonb) ->> 'snippet' AS snippet,
    ((data::jsonb) ->> 'occurred_at')::timestamptz AS occurred_at,
    (data::jsonb) ->> 'message_id' AS message_id,
    (data::jsonb) ->> 'thread_id' AS thread_id,
    (data::jsonb) -> 'participants' AS participants,
    data::jsonb AS document,
    version,
    created_at::timestamptz AS created_at,
    updated_at::timestamptz AS updated_at
FROM crm_record
WHERE kind = 'activity' AND deleted = 0;

-- Which live contacts took part in an activity: a participant address that
-- is one of the contact's exact-match email keys (keys move with merges).
CREATE VIEW activity_contacts AS
SELECT DISTINCT k.crm_id AS contact_id, r.id AS activity_id, p.value ->> 'role' AS role
FROM crm_record r
CROSS JOIN LATERAL jsonb_array_elements(
    COALESCE((r.data::jsonb) -> 'participants', '[]'::jsonb)
) AS p (value)
JOIN match_key k ON k.kind = 'contact'
    AND k.key = 'email:' || lower(trim(p.value ->> 'email'))
WHERE r.kind = 'activity' AND r.deleted = 0;

-- Each linked system's current copy of each live contact: the last synced
-- snapshot (the fields as that system holds them), its id there and when.
CREATE VIEW contact_sources AS
SELECT
    c.contact_id,
    l.connection AS system,
    l.external_id,
    l.snapshot::jsonb AS snapshot,
    l.remote_version,
    l.remote_updated_at::timestamptz AS remote_updated_at,
    l.updated_at::timestamptz AS last_synced_at,
    l.deleted
FROM id_link l
JOIN contact_ids c ON c.id = l.crm_id
WHERE l.object = 'contact';

-- Orders, invoices and activities of each live contact; order by `at`.
CREATE VIEW contact_timeline AS
SELECT c.contact_id,
    COALESCE((o.data::jsonb) ->> 'placed_at', (o.data::jsonb) ->> 'updated_at',
        o.created_at)::timestamptz AS at,
    'order' AS kind,
    o.id AS record_id,
    (o.data::jsonb) ->> 'number' AS title,
    (o.data::jsonb) ->> 'status' AS status,
    ((o.data::jsonb) ->> 'total')::numeric AS amount,
    (o.data::jsonb) ->> 'currency' AS currency
FROM contact_ids c
JOIN crm_record o ON o.kind = 'order' AND (o.data::jsonb) -> 'customer' ->> 'crm_id' = c.id
WHERE o.deleted = 0
UNION ALL
SELECT c.contact_id,
    COALESCE((i.data::jsonb) ->> 'issued_on' || 'T00:00:00Z', i.created_at)::timestamptz AS at,
    'invoice' AS kind,
    i.id AS record_id,
    (i.data::jsonb) ->> 'number' AS title,
    (i.data::jsonb) ->> 'status' AS status,
    ((i.data::jsonb) ->> 'total')::numeric AS amount,
    (i.data::jsonb) ->> 'currency' AS currency
FROM contact_ids c
JOIN crm_record i ON i.kind = 'invoice' AND (i.data::jsonb) -> 'customer' ->> 'crm_id' = c.id
WHERE i.deleted = 0
UNION ALL
SELECT ac.contact_id,
    COALESCE((r.data::jsonb) ->> 'occurred_at', r.created_at)::timestamptz AS at,
    'activity' AS kind,
    r.id AS record_id,
    (r.data::jsonb) ->> 'subject' AS title,
    (r.data::jsonb) ->> 'kind' AS status,
    NULL::numeric AS amount,
    NULL::text AS currency
FROM activity_contacts ac
JOIN crm_record r ON r.id = ac.activity_id;
