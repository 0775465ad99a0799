//! Safetensors bytes through `parse_safetensors` (the code `load_safetensors` runs), into
//! stores of f32 and f64: Ok or Err, never a panic, and both agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapegrad::nn::{ParamStore, parse_safetensors};

fn names<T: tapegrad::float::Float>(s: &ParamStore<T>) -> Vec<(String, Vec<usize>)> {
    s.iter()
        .map(|(n, t)| (n.to_string(), t.shape().to_vec()))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let a = parse_safetensors::<f32>(data, "fuzz.safetensors");
    let b = parse_safetensors::<f64>(data, "fuzz.safetensors");
    match (a, b) {
        (Ok(a), Ok(b)) => {
            assert_eq!(names(&a), names(&b));
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (a, b) => panic!("f32 and f64 disagree: {:?} vs {:?}", a.err(), b.err()),
    }
});
