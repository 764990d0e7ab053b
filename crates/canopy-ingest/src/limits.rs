/// Bounds on everything a request can make the server do. Defaults follow Mixpanel's
/// documented limits (§16 of the reference) where it has them.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Request body as received (compressed or not).
    pub max_body_bytes: usize,
    /// Body after gunzip; a gzip bomb stops here.
    pub max_decompressed_bytes: usize,
    /// Items per request (`/track`, `/import`, `/engage`, `/groups`).
    pub max_items: usize,
    /// Properties per event (Mixpanel: fewer than 255).
    pub max_properties: usize,
    /// Nesting of objects and lists inside a property value (Mixpanel: 3).
    pub max_depth: usize,
    /// Elements per list value (Mixpanel: fewer than 255).
    pub max_list_len: usize,
    /// String values and names are truncated to this many characters (Mixpanel: 255).
    pub max_string_chars: usize,
    /// Serialized size of one event (Mixpanel: 1 MB).
    pub max_event_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 10 << 20,
            max_decompressed_bytes: 20 << 20,
            max_items: 2000,
            max_properties: 255,
            max_depth: 3,
            max_list_len: 255,
            max_string_chars: 255,
            max_event_bytes: 1 << 20,
        }
    }
}
