//! Which CSV column feeds which contact field: `--map COLUMN=FIELD`, or a
//! guess from common header names (English and Chinese) when no map is given.

use std::str::FromStr;

use super::DedupeError;

/// A contact field a CSV column can feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnField {
    /// The row's id in its source.
    Id,
    /// Given name.
    FirstName,
    /// Family name.
    LastName,
    /// Whole name.
    FullName,
    /// Email (several columns may feed it).
    Email,
    /// Phone (several columns may feed it).
    Phone,
    /// Company.
    Company,
    /// Street line 1.
    AddressLine1,
    /// Street line 2.
    AddressLine2,
    /// City.
    City,
    /// Postal code.
    PostalCode,
    /// State or province.
    Region,
    /// Country.
    Country,
    /// Birth date (`YYYY-MM-DD`, `YYYY/M/D`, `YYYYMMDD`, `YYYY.MM.DD`).
    BirthDate,
}

impl FromStr for ColumnField {
    type Err = DedupeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "id" => ColumnField::Id,
            "first_name" => ColumnField::FirstName,
            "last_name" => ColumnField::LastName,
            "full_name" => ColumnField::FullName,
            "email" => ColumnField::Email,
            "phone" => ColumnField::Phone,
            "company" => ColumnField::Company,
            "address_line1" => ColumnField::AddressLine1,
            "address_line2" => ColumnField::AddressLine2,
            "city" => ColumnField::City,
            "postal_code" => ColumnField::PostalCode,
            "region" => ColumnField::Region,
            "country" => ColumnField::Country,
            "birth_date" => ColumnField::BirthDate,
            other => return Err(DedupeError::UnknownField(other.to_string())),
        })
    }
}

/// Guess the field of a header, or `None` to ignore the column.
pub fn guess(header: &str) -> Option<ColumnField> {
    let h: String = header
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    Some(match h.as_str() {
        "id" | "contactid" | "customerid" | "recordid" | "externalid" | "uid" | "sourceid" => {
            ColumnField::Id
        }
        "firstname" | "givenname" | "first" | "fname" | "forename" | "名" | "名字" => {
            ColumnField::FirstName
        }
        "lastname" | "familyname" | "surname" | "last" | "lname" | "姓" | "姓氏" => {
            ColumnField::LastName
        }
        "name" | "fullname" | "contactname" | "displayname" | "customername" | "姓名" | "名稱"
        | "名称" => ColumnField::FullName,
        "email" | "emailaddress" | "mail" | "email1" | "email2" | "電子郵件" | "电子邮件"
        | "邮箱" | "信箱" => ColumnField::Email,
        "phone" | "phonenumber" | "mobile" | "mobilephone" | "tel" | "telephone" | "cell"
        | "cellphone" | "phone1" | "phone2" | "電話" | "电话" | "手機" | "手机" => {
            ColumnField::Phone
        }
        "company" | "companyname" | "organization" | "organisation" | "account" | "accountname"
        | "公司" => ColumnField::Company,
        "address" | "addressline1" | "address1" | "street" | "street1" | "streetaddress"
        | "地址" => ColumnField::AddressLine1,
        "addressline2" | "address2" | "street2" => ColumnField::AddressLine2,
        "city" | "town" | "城市" | "縣市" => ColumnField::City,
        "postalcode" | "zip" | "zipcode" | "postcode" | "郵遞區號" | "邮编" => {
            ColumnField::PostalCode
        }
        "region" | "state" | "province" | "county" | "省" => ColumnField::Region,
        "country" | "countrycode" | "國家" | "国家" => ColumnField::Country,
        "birthdate" | "dob" | "dateofbirth" | "birthday" | "生日" | "出生日期" => {
            ColumnField::BirthDate
        }
        _ => return None,
    })
}

/// Resolve the field of every column of a header row. With a map, only
/// mapped columns are read, and each mapped column must exist.
pub fn resolve(
    headers: &csv::StringRecord,
    map: &[(String, ColumnField)],
    file: &std::path::Path,
) -> Result<Vec<Option<ColumnField>>, DedupeError> {
    if map.is_empty() {
        return Ok(headers.iter().map(guess).collect());
    }
    let mut out = vec![None; headers.len()];
    for (column, field) in map {
        let idx = headers
            .iter()
            .position(|h| h.trim() == column.as_str())
            .ok_or_else(|| DedupeError::MissingColumn {
                file: file.to_path_buf(),
                column: column.clone(),
            })?;
        out[idx] = Some(*field);
    }
    Ok(out)
}

/// Parse `COLUMN=FIELD`.
pub fn parse_map_entry(entry: &str) -> Result<(String, ColumnField), DedupeError> {
    let (column, field) = entry
        .rsplit_once('=')
        .ok_or_else(|| DedupeError::BadMap(entry.to_string()))?;
    if column.trim().is_empty() {
        return Err(DedupeError::BadMap(entry.to_string()));
    }
    Ok((column.trim().to_string(), field.parse()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guesses_common_headers() {
        assert_eq!(guess("First Name"), Some(ColumnField::FirstName));
        assert_eq!(guess("E-mail"), Some(ColumnField::Email));
        assert_eq!(guess("Mobile Phone"), Some(ColumnField::Phone));
        assert_eq!(guess("姓名"), Some(ColumnField::FullName));
        assert_eq!(guess("entity"), None);
    }

    #[test]
    fn parses_map_entries() {
        assert_eq!(
            parse_map_entry("Mail=email").ok(),
            Some(("Mail".to_string(), ColumnField::Email))
        );
        assert!(matches!(
            parse_map_entry("Mail"),
            Err(DedupeError::BadMap(_))
        ));
        assert!(matches!(
            parse_map_entry("Mail=nope"),
            Err(DedupeError::UnknownField(_))
        ));
    }
}
