//! A stateless `wasi:http` handler: the anchor of the serve benchmark, since
//! it runs unchanged on `wasmtime serve` too.

use wstd::http::{Body, Request, Response};

#[wstd::http_server]
async fn main(_request: Request<Body>) -> Result<Response<Body>, wstd::http::Error> {
    Ok(Response::new(Body::from("Hello, world!\n")))
}
