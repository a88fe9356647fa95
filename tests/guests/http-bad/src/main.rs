//! A `wasi:http` handler that misbehaves on demand: `/trap` panics, `/loop`
//! never returns, `/hog` allocates without end; anything else answers `ok`.

use wstd::http::{Body, Request, Response};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, wstd::http::Error> {
    match request.uri().path() {
        "/trap" => panic!("the handler panicked on purpose"),
        "/loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "/hog" => {
            let mut held: Vec<Vec<u8>> = Vec::new();
            loop {
                held.push(std::hint::black_box(vec![1u8; 1 << 20]));
            }
        }
        _ => Ok(Response::new(Body::from("ok\n"))),
    }
}
