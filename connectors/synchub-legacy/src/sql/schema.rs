//! Which tables the SuiteCRM and vtiger readers join, and the relationship
//! queries that add e-mails, accounts and owners to each row.

use synchub_core::ObjectKind;

/// A table joined to the base table on `key = base.id` (LEFT JOIN: a
/// missing custom-field row is fine).
#[derive(Debug, Clone)]
pub(crate) struct Join {
    pub table: &'static str,
    pub key: &'static str,
    /// Name the columns by their `vtiger_field` label (vtiger `*cf` tables).
    pub labels: bool,
}

/// How one legacy module is read.
#[derive(Debug, Clone)]
pub(crate) struct TableSpec {
    /// The mapping's `source` name (`contacts`).
    pub label: &'static str,
    /// The CRM object the rows become.
    pub kind: ObjectKind,
    /// The base table.
    pub table: &'static str,
    /// Its primary key; rows are read in this order.
    pub id: &'static str,
    /// Joined one-to-one tables.
    pub joins: Vec<Join>,
    /// Queries run per page with `{ids}` replaced by the page's ids; the
    /// first column is the row id, the others become extra columns (a row
    /// may get several values of one column).
    pub enrich: Vec<String>,
}

fn suitecrm_emails(module: &str) -> String {
    format!(
        "SELECT CAST(r.bean_id AS CHAR), \
           CASE WHEN e.invalid_email = 1 THEN NULL ELSE CAST(e.email_address AS CHAR) END AS email_addresses, \
           CASE WHEN e.invalid_email = 1 THEN CAST(e.email_address AS CHAR) END AS invalid_email_addresses, \
           CASE WHEN r.primary_address = 1 THEN CAST(e.opt_out AS CHAR) END AS email_opted_out \
         FROM email_addr_bean_rel r JOIN email_addresses e ON e.id = r.email_address_id \
         WHERE r.deleted = 0 AND e.deleted = 0 AND r.bean_module = '{module}' AND r.bean_id IN ({{ids}}) \
         ORDER BY r.bean_id, r.primary_address DESC, r.date_created, r.id"
    )
}

fn suitecrm_owner(table: &str) -> String {
    format!(
        "SELECT CAST(b.id AS CHAR), CAST(u.user_name AS CHAR) AS assigned_user_name \
         FROM {table} b JOIN users u ON u.id = b.assigned_user_id WHERE b.id IN ({{ids}})"
    )
}

/// SuiteCRM 7: `<table>` + `<table>_cstm`, e-mails through
/// `email_addr_bean_rel`, accounts through the link tables.
pub(crate) fn suitecrm() -> Vec<TableSpec> {
    let cstm = |table: &'static str| Join {
        table,
        key: "id_c",
        labels: false,
    };
    vec![
        TableSpec {
            label: "contacts",
            kind: ObjectKind::Contact,
            table: "contacts",
            id: "id",
            joins: vec![cstm("contacts_cstm")],
            enrich: vec![
                suitecrm_emails("Contacts"),
                "SELECT CAST(ac.contact_id AS CHAR), CAST(a.name AS CHAR) AS account_name, \
                   CAST(a.id AS CHAR) AS account_id \
                 FROM accounts_contacts ac JOIN accounts a ON a.id = ac.account_id AND a.deleted = 0 \
                 WHERE ac.deleted = 0 AND ac.contact_id IN ({ids}) \
                 ORDER BY ac.contact_id, ac.date_modified, ac.id"
                    .into(),
                suitecrm_owner("contacts"),
            ],
        },
        TableSpec {
            label: "leads",
            kind: ObjectKind::Contact,
            table: "leads",
            id: "id",
            joins: vec![cstm("leads_cstm")],
            enrich: vec![suitecrm_emails("Leads"), suitecrm_owner("leads")],
        },
        TableSpec {
            label: "accounts",
            kind: ObjectKind::Company,
            table: "accounts",
            id: "id",
            joins: vec![cstm("accounts_cstm")],
            enrich: vec![suitecrm_emails("Accounts"), suitecrm_owner("accounts")],
        },
        TableSpec {
            label: "opportunities",
            kind: ObjectKind::Order,
            table: "opportunities",
            id: "id",
            joins: vec![cstm("opportunities_cstm")],
            enrich: vec![
                "SELECT CAST(ao.opportunity_id AS CHAR), CAST(a.id AS CHAR) AS account_id, \
                   CAST(a.name AS CHAR) AS account_name \
                 FROM accounts_opportunities ao JOIN accounts a ON a.id = ao.account_id AND a.deleted = 0 \
                 WHERE ao.deleted = 0 AND ao.opportunity_id IN ({ids}) \
                 ORDER BY ao.opportunity_id, ao.date_modified, ao.id"
                    .into(),
                "SELECT CAST(oc.opportunity_id AS CHAR), CAST(oc.contact_id AS CHAR) AS contact_ids \
                 FROM opportunities_contacts oc JOIN contacts c ON c.id = oc.contact_id AND c.deleted = 0 \
                 WHERE oc.deleted = 0 AND oc.opportunity_id IN ({ids}) ORDER BY oc.opportunity_id, oc.id"
                    .into(),
                suitecrm_owner("opportunities"),
            ],
        },
    ]
}

fn vtiger_owner() -> String {
    "SELECT CAST(e.crmid AS CHAR), CAST(COALESCE(u.user_name, g.groupname) AS CHAR) AS owner_name \
     FROM vtiger_crmentity e LEFT JOIN vtiger_users u ON u.id = e.smownerid \
     LEFT JOIN vtiger_groups g ON g.groupid = e.smownerid WHERE e.crmid IN ({ids})"
        .into()
}

/// The contact a converted vtiger lead became, as `converted_contact_id`.
///
/// vtiger keeps no link from a lead to the contact its conversion created:
/// `vtws_convertlead` (include/Webservices/ConvertLead.php, vtiger 6 and 7)
/// creates the contact from the lead's fields through
/// `vtiger_convertleadmapping` (lead `email` → contact `email` by default),
/// moves the lead's related records to it (`vtws_transferLeadRelatedRecords`)
/// and then only sets `vtiger_leaddetails.converted = 1`
/// (`vtws_updateConvertLeadStatus`). So a converted lead is matched to the
/// live contact with its e-mail that was created after it: crmids come from
/// one sequence (`vtiger_crmentity_seq`), so that contact has a larger id;
/// of several, the first (the conversion's) wins.
/// <https://github.com/vtiger-crm/vtigercrm/blob/master/include/Webservices/ConvertLead.php>
fn vtiger_converted_contact() -> String {
    "SELECT CAST(l.leadid AS CHAR), CAST(MIN(c.contactid) AS CHAR) AS converted_contact_id \
     FROM vtiger_leaddetails l \
     JOIN vtiger_contactdetails c ON c.contactid > l.leadid \
       AND LOWER(TRIM(c.email)) = LOWER(TRIM(l.email)) \
     JOIN vtiger_crmentity e ON e.crmid = c.contactid AND e.deleted = 0 \
     WHERE l.converted = 1 AND TRIM(COALESCE(l.email, '')) <> '' AND l.leadid IN ({ids}) \
     GROUP BY l.leadid"
        .into()
}

/// vtiger CRM 7: `vtiger_<module>` + `vtiger_crmentity` (deleted, owner,
/// times) + address/sub-detail tables + the `*cf` custom-field table.
pub(crate) fn vtiger() -> Vec<TableSpec> {
    let join = |table: &'static str, key: &'static str| Join {
        table,
        key,
        labels: false,
    };
    let cf = |table: &'static str, key: &'static str| Join {
        table,
        key,
        labels: true,
    };
    let entity = || join("vtiger_crmentity", "crmid");
    vec![
        TableSpec {
            label: "contacts",
            kind: ObjectKind::Contact,
            table: "vtiger_contactdetails",
            id: "contactid",
            joins: vec![
                entity(),
                join("vtiger_contactaddress", "contactaddressid"),
                join("vtiger_contactsubdetails", "contactsubscriptionid"),
                cf("vtiger_contactscf", "contactid"),
            ],
            enrich: vec![
                "SELECT CAST(c.contactid AS CHAR), CAST(a.accountname AS CHAR) AS account_name \
                 FROM vtiger_contactdetails c JOIN vtiger_account a ON a.accountid = c.accountid \
                 JOIN vtiger_crmentity e ON e.crmid = a.accountid AND e.deleted = 0 \
                 WHERE c.contactid IN ({ids})"
                    .into(),
                vtiger_owner(),
            ],
        },
        TableSpec {
            label: "leads",
            kind: ObjectKind::Contact,
            table: "vtiger_leaddetails",
            id: "leadid",
            joins: vec![
                entity(),
                join("vtiger_leadaddress", "leadaddressid"),
                join("vtiger_leadsubdetails", "leadsubscriptionid"),
                cf("vtiger_leadscf", "leadid"),
            ],
            enrich: vec![vtiger_converted_contact(), vtiger_owner()],
        },
        TableSpec {
            label: "accounts",
            kind: ObjectKind::Company,
            table: "vtiger_account",
            id: "accountid",
            joins: vec![
                entity(),
                join("vtiger_accountbillads", "accountaddressid"),
                join("vtiger_accountshipads", "accountaddressid"),
                cf("vtiger_accountscf", "accountid"),
            ],
            enrich: vec![vtiger_owner()],
        },
        TableSpec {
            label: "potentials",
            kind: ObjectKind::Order,
            table: "vtiger_potential",
            id: "potentialid",
            joins: vec![entity(), cf("vtiger_potentialscf", "potentialid")],
            enrich: vec![
                "SELECT CAST(p.potentialid AS CHAR), CAST(a.accountname AS CHAR) AS account_name \
                 FROM vtiger_potential p JOIN vtiger_account a ON a.accountid = p.related_to \
                 WHERE p.potentialid IN ({ids})"
                    .into(),
                vtiger_owner(),
            ],
        },
    ]
}
