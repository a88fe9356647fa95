//! A guest that allocates without end: the host's memory limit must stop it.
fn main() {
    let mut held: Vec<Vec<u8>> = Vec::new();
    loop {
        held.push(std::hint::black_box(vec![1u8; 1 << 20]));
    }
}
