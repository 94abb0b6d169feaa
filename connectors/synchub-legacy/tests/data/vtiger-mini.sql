-- A small vtiger CRM 7 database: the module tables the migration reads, with
-- the columns that matter (the real tables have many more), and a few rows
-- covering soft deletes (vtiger_crmentity.deleted), custom fields (*cf
-- tables, labels in vtiger_field), group owners and orphans, and a converted
-- lead (33, converted = 1) with the contact its conversion created (35, a later
-- crmid, same e-mail; vtiger stores no link between them). Contact 26 has the
-- e-mail of lead 31, which is not converted: not a conversion.
SET NAMES utf8mb4;
CREATE TABLE vtiger_crmentity (crmid INT NOT NULL PRIMARY KEY, smcreatorid INT NOT NULL DEFAULT 0,
  smownerid INT NOT NULL DEFAULT 0, modifiedby INT NOT NULL DEFAULT 0, setype VARCHAR(30) NOT NULL,
  description TEXT, createdtime DATETIME NOT NULL, modifiedtime DATETIME NOT NULL, presence INT DEFAULT 1,
  deleted INT NOT NULL DEFAULT 0, label VARCHAR(255)) DEFAULT CHARSET=utf8mb4;
CREATE TABLE vtiger_users (id INT NOT NULL PRIMARY KEY, user_name VARCHAR(255), first_name VARCHAR(30),
  last_name VARCHAR(30), status VARCHAR(25)) DEFAULT CHARSET=utf8mb4;
CREATE TABLE vtiger_groups (groupid INT NOT NULL PRIMARY KEY, groupname VARCHAR(100)) DEFAULT CHARSET=utf8mb4;
CREATE TABLE vtiger_field (fieldid INT NOT NULL PRIMARY KEY, tabid INT NOT NULL, columnname VARCHAR(30),
  tablename VARCHAR(100), fieldlabel VARCHAR(50)) DEFAULT CHARSET=utf8mb4;
CREATE TABLE vtiger_contactdetails (contactid INT NOT NULL PRIMARY KEY, contact_no VARCHAR(100), accountid INT,
  salutation VARCHAR(200), firstname VARCHAR(40), lastname VARCHAR(80), email VARCHAR(100), phone VARCHAR(50),
  mobile VARCHAR(50), title VARCHAR(50), department VARCHAR(30), fax VARCHAR(50), reportsto VARCHAR(30),
  emailoptout VARCHAR(3) DEFAULT '0', donotcall VARCHAR(3), secondaryemail VARCHAR(100)) DEFAULT CHARSET=utf8mb4;
CREATE TABLE vtiger_contactaddress (contactaddressid INT NOT NULL PRIMARY KEY, mailingcity VARCHAR(40),
  mailingstreet VARCHAR(250), mailingcountry VARCHAR(40), mailingstate VARCHAR(30), mailingzip VARCHAR(30),
  othercity VARCHAR(40), otherstreet VARCHAR(250)) DEFAULT CHARSET=utf8mb4;
CREATE TABLE vtiger_contactsubdetails (contactsubscriptionid INT NOT NULL PRIMARY KEY, homephone VARCHAR(50),
  otherphone VARCHAR(50), assistant VARCHAR(30), assistantphone VARCHAR(50), birthday DATE,
  leadsource VARCHAR(200)) DEFAULT CHARSET=utf8mb4;
CREATE TABLE vtiger_contactscf (contactid INT NOT NULL PRIMARY KEY, cf_851 VARCHAR(100), cf_853 VARCHAR(100))
  DEFAULT CHARSET=utf8mb4;
CREATE TABLE vtiger_account (accountid INT NOT NULL PRIMARY KEY, account_no VARCHAR(100), accountname VARCHAR(100),
  parentid INT DEFAULT 0, account_type VARCHAR(200), industry VARCHAR(200), annualrevenue DECIMAL(25,8),
  phone VARCHAR(30), otherphone VARCHAR(30), email1 VARCHAR(100), email2 VARCHAR(100), website VARCHAR(100),
  employees INT) DEFAULT CHARSET=utf8mb4;
CREATE TABLE vtiger_accountbillads (accountaddressid INT NOT NULL PRIMARY KEY, bill_city VARCHAR(30),
  bill_code VARCHAR(30), bill_country VARCHAR(30), bill_state VARCHAR(30), bill_street VARCHAR(250))
  DEFAULT CHARSET=utf8mb4;
CREATE TABLE vtiger_accountshipads (accountaddressid INT NOT NULL PRIMARY KEY, ship_city VARCHAR(30),
  ship_code VARCHAR(30), ship_country VARCHAR(30), ship_state VARCHAR(30), ship_street VARCHAR(250))
  DEFAULT CHARSET=utf8mb4;
CREATE TABLE vtiger_accountscf (accountid INT NOT NULL PRIMARY KEY, cf_861 VARCHAR(20)) DEFAULT CHARSET=utf8mb4;
CREATE TABLE vtiger_leaddetails (leadid INT NOT NULL PRIMARY KEY, lead_no VARCHAR(100), email VARCHAR(100),
  firstname VARCHAR(40), lastname VARCHAR(80), company VARCHAR(100), leadstatus VARCHAR(50),
  converted INT DEFAULT 0, designation VARCHAR(50), secondaryemail VARCHAR(100), emailoptout VARCHAR(3))
  DEFAULT CHARSET=utf8mb4;
CREATE TABLE vtiger_leadaddress (leadaddressid INT NOT NULL PRIMARY KEY, city VARCHAR(30), code VARCHAR(30),
  state VARCHAR(30), country VARCHAR(30), phone VARCHAR(50), mobile VARCHAR(50), lane VARCHAR(250))
  DEFAULT CHARSET=utf8mb4;
CREATE TABLE vtiger_leadsubdetails (leadsubscriptionid INT NOT NULL PRIMARY KEY, website VARCHAR(255))
  DEFAULT CHARSET=utf8mb4;
CREATE TABLE vtiger_leadscf (leadid INT NOT NULL PRIMARY KEY) DEFAULT CHARSET=utf8mb4;
CREATE TABLE vtiger_potential (potentialid INT NOT NULL PRIMARY KEY, potential_no VARCHAR(100), related_to INT,
  potentialname VARCHAR(120), amount DECIMAL(25,8), closingdate DATE, sales_stage VARCHAR(200),
  probability DECIMAL(7,3), contact_id INT) DEFAULT CHARSET=utf8mb4;
CREATE TABLE vtiger_potentialscf (potentialid INT NOT NULL PRIMARY KEY) DEFAULT CHARSET=utf8mb4;

INSERT INTO vtiger_users VALUES (1, 'admin', '', 'Administrator', 'Active'), (5, 'mei.lin', 'Mei', 'Lin', 'Active');
INSERT INTO vtiger_groups VALUES (3, 'Team Selling');
INSERT INTO vtiger_field VALUES (851, 4, 'cf_851', 'vtiger_contactscf', 'LINE ID'),
  (853, 4, 'cf_853', 'vtiger_contactscf', '會員等級'), (861, 6, 'cf_861', 'vtiger_accountscf', '統一編號');
INSERT INTO vtiger_crmentity (crmid, smownerid, setype, createdtime, modifiedtime, deleted, label) VALUES
  (11, 5, 'Accounts', '2020-01-01 00:00:00', '2024-05-15 09:30:00', 0, '鼎新科技股份有限公司'),
  (12, 3, 'Accounts', '2020-01-01 00:00:00', '2024-05-15 09:30:00', 0, 'Acme Trading Ltd'),
  (13, 1, 'Accounts', '2020-01-01 00:00:00', '2024-05-15 09:30:00', 1, 'Gone Ltd'),
  (21, 5, 'Contacts', '2020-01-01 00:00:00', '2024-05-15 09:30:00', 0, '陳大文'),
  (22, 1, 'Contacts', '2020-01-01 00:00:00', '2024-05-15 09:30:00', 0, '歐陽娜娜'),
  (23, 1, 'Contacts', '2020-01-01 00:00:00', '2024-05-15 09:30:00', 1, '王小明'),
  (24, 1, 'Contacts', '2020-01-01 00:00:00', '2024-05-15 09:30:00', 0, ''),
  (31, 3, 'Leads', '2020-01-01 00:00:00', '2024-05-15 09:30:00', 0, 'Ivy Lee'),
  (32, 1, 'Leads', '2020-01-01 00:00:00', '2024-05-15 09:30:00', 1, 'Old Lead'),
  (33, 5, 'Leads', '2023-03-01 00:00:00', '2024-02-01 10:00:00', 0, '林美玲'),
  (35, 5, 'Contacts', '2024-02-01 10:00:00', '2024-05-15 09:30:00', 0, '林美玲'),
  (26, 1, 'Contacts', '2020-01-01 00:00:00', '2024-05-15 09:30:00', 0, 'Ivy Lee'),
  (41, 5, 'Potentials', '2020-01-01 00:00:00', '2024-05-15 09:30:00', 0, '年度採購'),
  (42, 3, 'Potentials', '2020-01-01 00:00:00', '2024-05-15 09:30:00', 0, 'POS rollout');
INSERT INTO vtiger_account VALUES
  (11, 'ACC1', '鼎新科技股份有限公司', 0, 'Customer', 'Electronics', 50000000, '(02) 2712-3456', NULL,
   'info@dingxin.example.com.tw', NULL, 'www.dingxin.example.com.tw', 250),
  (12, 'ACC2', 'Acme Trading Ltd', 0, 'Partner', 'Retail', NULL, '+852 2345 0000', NULL, NULL, NULL, NULL, NULL),
  (13, 'ACC3', 'Gone Ltd', 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO vtiger_accountbillads VALUES (11, '台北市', '110', 'Taiwan', NULL, '信義路五段7號'),
  (12, 'Hong Kong', NULL, 'Hong Kong', NULL, '88 Queen''s Road'), (13, NULL, NULL, NULL, NULL, NULL);
INSERT INTO vtiger_accountshipads VALUES (11, NULL, NULL, NULL, NULL, NULL), (12, NULL, NULL, NULL, NULL, NULL),
  (13, NULL, NULL, NULL, NULL, NULL);
INSERT INTO vtiger_accountscf VALUES (11, '12345678'), (12, NULL);
INSERT INTO vtiger_contactdetails VALUES
  (21, 'CON1', 11, 'Mr.', '大文', '陳', 'Tai.Man@Example.com.tw', '(02)2345-6789', '0912-345-678', '經理', NULL, NULL, NULL, '0', '0', NULL),
  (22, 'CON2', 13, 'Ms.', '娜娜', '歐陽', 'nana@example.hk', NULL, '+852 9123 4567', NULL, NULL, NULL, NULL, '1', '0', 'NANA@work.example.com'),
  (23, 'CON3', NULL, NULL, '小明', '王', 'ming@example.com', NULL, NULL, NULL, NULL, NULL, NULL, '0', '0', NULL),
  (24, 'CON4', NULL, NULL, NULL, NULL, NULL, NULL, NULL, '無名', NULL, NULL, NULL, '0', '0', NULL),
  (25, 'CON5', 12, NULL, 'Tai Man', 'Chan', 'chan.tm@example.hk', NULL, '9123 4567', NULL, NULL, NULL, NULL, '0', '0', NULL),
  (26, 'CON6', NULL, NULL, 'Ivy', 'Lee', 'ivy.lee@globex.example', NULL, NULL, NULL, NULL, NULL, NULL, '0', '0', NULL),
  (35, 'CON7', 11, NULL, '美玲', '林', 'Mei.Ling@Dingxin.example.com.tw', '(02)2712-3456', '0933-222-111', '採購經理', NULL, NULL, NULL, '0', '0', NULL);
INSERT INTO vtiger_contactaddress VALUES (21, '台北市', '信義路五段7號', 'Taiwan', NULL, '110', NULL, NULL),
  (22, '香港', NULL, '香港', NULL, NULL, NULL, NULL), (23, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (24, NULL, NULL, NULL, NULL, NULL, NULL, NULL), (25, 'Kowloon', NULL, 'HK', NULL, NULL, NULL, NULL);
INSERT INTO vtiger_contactsubdetails VALUES (21, NULL, NULL, NULL, NULL, '1980-02-29', 'Trade Show'),
  (22, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO vtiger_contactscf VALUES (21, '@taiman', '金卡'), (22, NULL, '銀卡');
INSERT INTO vtiger_leaddetails VALUES
  (31, 'LEA1', 'ivy.lee@globex.example', 'Ivy', 'Lee', 'Globex Ltd', 'Hot', 0, 'Buyer', NULL, '0'),
  (32, 'LEA2', 'old@example.com', 'Old', 'Lead', NULL, 'Cold', 0, NULL, NULL, '0'),
  (33, 'LEA3', 'mei.ling@dingxin.example.com.tw', '美玲', '林', '鼎新科技股份有限公司', 'Qualified', 1, '採購', NULL, '0');
INSERT INTO vtiger_leadaddress VALUES (31, 'Kowloon', NULL, NULL, 'Hong Kong', NULL, '6123 4567', NULL),
  (32, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (33, '台北市', NULL, NULL, 'Taiwan', NULL, '0933 222 111', NULL);
INSERT INTO vtiger_potential VALUES (41, 'POT1', 11, '年度採購', 120000.50000000, '2024-03-31', 'Closed Won', 100, 21),
  (42, 'POT2', 12, 'POS rollout', NULL, '2024-09-30', 'Prospecting', 10, NULL);
