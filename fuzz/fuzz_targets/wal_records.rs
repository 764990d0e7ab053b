//! The WAL record decoder (what recovery runs on whatever a crash left behind).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(records) = canopy_wal::decode_records(data) {
        // Whatever decodes must re-encode to something that decodes to the same records.
        let again = canopy_wal::decode_records(&canopy_wal::encode_records(&records)).expect("round trip");
        assert_eq!(again, records);
    }
});
