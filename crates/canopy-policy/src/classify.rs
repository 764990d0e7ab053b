//! Classes of well-known property names, used when the project's data dictionary does not
//! name a property (regulation-controls.md A4, A7, §C). Names are compared case-insensitively
//! with `-` and spaces read as `_`.

use crate::settings::PropertyClass;
use hashbrown::HashMap;
use std::sync::LazyLock;

const AD_ID: &[&str] = &[
    "$idfa",
    "idfa",
    "$ios_ifa",
    "ifa",
    "$gaid",
    "gaid",
    "aaid",
    "adid",
    "ad_id",
    "advertising_id",
    "$advertising_id",
    "$android_advertising_id",
    "google_ad_id",
];
const DEVICE_HW_ID: &[&str] = &[
    "imei",
    "$imei",
    "meid",
    "mac",
    "$mac",
    "mac_address",
    "wifi_mac",
    "$wifi_mac",
    "bssid",
    "$bssid",
    "ssid",
    "$ssid",
    "imsi",
    "sim_serial",
    "iccid",
    "build_serial",
    "serial",
    "serial_number",
    "device_serial",
    "udid",
    "android_id",
];
const CONTACT: &[&str] = &[
    "$email",
    "email",
    "e_mail",
    "email_address",
    "$phone",
    "phone",
    "phone_number",
    "telephone",
    "mobile",
    "mobile_number",
    "address",
    "$address",
    "street",
    "street_address",
    "postal_address",
    "zip",
    "zipcode",
    "postcode",
    "parent_email",
];
const NAME: &[&str] = &[
    "$name",
    "name",
    "$first_name",
    "first_name",
    "firstname",
    "$last_name",
    "last_name",
    "lastname",
    "surname",
    "full_name",
    "username",
    "user_name",
    "screen_name",
    "nickname",
    "child_name",
    "kid_name",
    "parent_name",
];
const PRECISE_GEO: &[&str] = &[
    "$latitude",
    "$longitude",
    "latitude",
    "longitude",
    "lat",
    "lon",
    "lng",
    "long",
    "location",
    "geo",
    "coordinates",
    "gps",
];
const GOV_ID: &[&str] = &[
    "ssn",
    "social_security_number",
    "aadhaar",
    "aadhar",
    "pan",
    "pan_number",
    "passport",
    "passport_number",
    "national_id",
    "tax_id",
    "driver_license",
    "drivers_license",
    "birth_certificate",
];
const BIOMETRIC: &[&str] = &[
    "fingerprint",
    "face_id",
    "faceprint",
    "voiceprint",
    "retina",
    "iris",
    "face_template",
];
const MEDIA: &[&str] = &[
    "photo",
    "image",
    "picture",
    "avatar",
    "$avatar",
    "selfie",
    "video",
    "audio",
    "voice",
    "recording",
    "voice_note",
];
const FREE_TEXT: &[&str] = &[
    "search_query",
    "search_term",
    "query",
    "search",
    "message",
    "comment",
    "comments",
    "feedback",
    "chat",
    "chat_message",
    "text",
    "note",
    "notes",
    "bio",
    "description",
    "review",
    "answer",
    "typed_text",
];

/// The class of a property the dictionary does not list, if its name is a known one.
pub fn builtin_class(name: &str) -> Option<PropertyClass> {
    // Most names need no normalizing: allocate only when one does.
    let name = name.trim();
    if name
        .bytes()
        .any(|b| b.is_ascii_uppercase() || b == b'-' || b == b' ')
    {
        let n: String = name
            .chars()
            .map(|c| {
                if c == '-' || c == ' ' {
                    '_'
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect();
        return CLASSES.get(n.as_str()).copied();
    }
    CLASSES.get(name).copied()
}

static CLASSES: LazyLock<HashMap<&'static str, PropertyClass>> = LazyLock::new(|| {
    let table: [(&[&str], PropertyClass); 9] = [
        (AD_ID, PropertyClass::AdId),
        (DEVICE_HW_ID, PropertyClass::DeviceHwId),
        (CONTACT, PropertyClass::Contact),
        (NAME, PropertyClass::Name),
        (PRECISE_GEO, PropertyClass::PreciseGeo),
        (GOV_ID, PropertyClass::GovId),
        (BIOMETRIC, PropertyClass::Biometric),
        (MEDIA, PropertyClass::Media),
        (FREE_TEXT, PropertyClass::FreeText),
    ];
    table
        .iter()
        .flat_map(|(names, class)| names.iter().map(move |n| (*n, *class)))
        .collect()
});

/// Properties SDKs add on their own (`$…`, `mp_…`) and Canopy's stamps: technical unless a
/// class above says otherwise.
pub fn is_default_property(name: &str) -> bool {
    name.starts_with('$')
        || name.starts_with("mp_")
        || matches!(name, "token" | "time" | "distinct_id")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_names_are_classified_whatever_their_spelling() {
        assert_eq!(builtin_class("$idfa"), Some(PropertyClass::AdId));
        assert_eq!(builtin_class("Advertising-ID"), Some(PropertyClass::AdId));
        assert_eq!(
            builtin_class("MAC Address"),
            Some(PropertyClass::DeviceHwId)
        );
        assert_eq!(builtin_class("$email"), Some(PropertyClass::Contact));
        assert_eq!(builtin_class("First_Name"), Some(PropertyClass::Name));
        assert_eq!(builtin_class("$latitude"), Some(PropertyClass::PreciseGeo));
        assert_eq!(builtin_class("search_query"), Some(PropertyClass::FreeText));
        assert_eq!(builtin_class("level"), None);
        assert!(
            is_default_property("$os")
                && is_default_property("mp_lib")
                && !is_default_property("level")
        );
    }
}
