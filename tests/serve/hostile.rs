//! Hostile and faulty clients: each malformed request gets a clear error with the right
//! status, the server keeps serving, and nothing leaks.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use ndarray::Array2;
use serde_json::{json, Value};

use crate::common::http::HttpResponse;
use crate::{json_input, TestServer};

/// Asserts `status` and that the error message contains `needle`.
#[track_caller]
fn refused(r: HttpResponse, status: u16, needle: &str) {
    let e = r.error(status);
    assert!(e.contains(needle), "`{needle}` in `{e}`");
    assert!(!e.contains('\n'), "one line: {e}");
}

#[test]
fn malformed_requests_get_clear_errors() {
    let server = TestServer::with(wgpu_lstm::BatcherOptions::default(), 4096);
    let path = "/v2/models/gru/infer";
    let x = Array2::<f32>::ones((2, 3));
    let raw = |body: &[u8]| server.http("POST", path, &[], body);
    let post = |v: Value| server.post_json(path, &v);
    refused(raw(b"{\"inputs\": ["), 400, "not valid JSON");
    refused(raw(b"[1, 2]"), 400, "must be a JSON object");
    refused(post(json!({})), 400, "no `inputs` array");
    refused(post(json!({ "inputs": [] })), 400, "input `x` is missing");
    let mut t = json_input("x", &x);
    t["datatype"] = json!("FP64");
    refused(post(json!({ "inputs": [t] })), 400, "datatype FP64");
    let mut t = json_input("x", &x);
    t["shape"] = json!([1, 2, 3]);
    refused(post(json!({ "inputs": [t] })), 400, "has shape [1, 2, 3]");
    let mut t = json_input("x", &x);
    t["shape"] = json!([2, 4]);
    refused(
        post(json!({ "inputs": [t] })),
        400,
        "the model takes [T, 3]",
    );
    let mut t = json_input("x", &x);
    t["data"] = json!([1.0, 2.0]);
    refused(post(json!({ "inputs": [t] })), 400, "has 2 elements, not 6");
    let mut t = json_input("x", &x);
    t["data"] = json!(["a", 1.0]);
    refused(post(json!({ "inputs": [t] })), 400, "found a string");
    let mut t = json_input("x", &x);
    t["shape"] = json!([0, 3]);
    t["data"] = json!([]);
    refused(post(json!({ "inputs": [t] })), 400, "T ≥ 1");
    refused(
        post(json!({ "inputs": [json_input("x", &x), json_input("x", &x)] })),
        400,
        "given twice",
    );
    refused(
        post(json!({ "inputs": [json_input("x", &x), json_input("q", &x)] })),
        400,
        "unknown input `q`",
    );
    refused(
        post(json!({ "inputs": [json_input("x", &x)], "outputs": [{ "name": "c_n" }] })),
        400,
        "unknown output `c_n`",
    );
    refused(
        server.post_json("/v2/models/none/infer", &json!({ "inputs": [] })),
        404,
        "unknown model `none`",
    );
    refused(
        server.post_json("/v2/models/gru/versions/7/infer", &json!({ "inputs": [] })),
        404,
        "no version `7`",
    );
    // Binary sizes that disagree with the body.
    let header = |size: usize| {
        json!({ "inputs": [{ "name": "x", "datatype": "FP32", "shape": [2, 3],
                  "parameters": { "binary_data_size": size } }] })
        .to_string()
        .into_bytes()
    };
    let send = |head: &[u8], data: &[u8], length: String| {
        let mut body = head.to_vec();
        body.extend_from_slice(data);
        server.http(
            "POST",
            path,
            &[("inference-header-content-length", length)],
            &body,
        )
    };
    let h = header(24);
    refused(send(&h, &[0; 20], h.len().to_string()), 400, "does not fit");
    refused(send(&h, &[0; 28], h.len().to_string()), 400, "beyond those");
    refused(send(&h, &[0; 24], "9999".into()), 400, "the body has");
    refused(send(&h, &[0; 24], "ten".into()), 400, "is not a length");
    let h = header(22);
    refused(
        send(&h, &[0; 22], h.len().to_string()),
        400,
        "FP32 elements",
    );
    // Over the body limit (4096 bytes here).
    let big = json!({ "inputs": [json_input("x", &Array2::<f32>::ones((400, 3)))] });
    refused(server.post_json(path, &big), 413, "limit of 4096 bytes");
    // The same without a Content-Length (chunked), found while reading.
    let chunked = chunked_post(server.http, path, big.to_string().as_bytes());
    assert!(chunked.contains("413"), "{chunked}");
    refused(
        server.http("POST", path, &[("content-encoding", "gzip".into())], b"{}"),
        400,
        "Content-Encoding",
    );
    // And it still serves.
    let r = post(json!({ "inputs": [json_input("x", &x)] }));
    assert_eq!(r.status, 200);
    let text = String::from_utf8(server.get("/metrics").body).unwrap();
    assert!(
        text.contains("wgpu_lstm_slots_in_use{model=\"gru\",version=\"1\"} 0"),
        "{text}"
    );
}

/// Clients that go away: mid-body, and after sending a whole request without waiting for the
/// answer. The server goes on and the table ends empty.
#[test]
fn clients_that_disconnect_leak_nothing() {
    let server = TestServer::start();
    // Half a body, then gone.
    {
        let mut s = TcpStream::connect(server.http).unwrap();
        let head = "POST /v2/models/lstm/infer HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n{\"inputs\": [";
        s.write_all(head.as_bytes()).unwrap();
    }
    // Whole requests (long ones), then gone before the answer: each socket is dropped once the
    // batcher has admitted its request, so that no admission can come after the table is seen
    // empty.
    let metric = |name: &str| -> u64 {
        let text = String::from_utf8(server.get("/metrics").body).unwrap();
        let prefix = format!("{name}{{model=\"lstm\",version=\"1\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .parse()
            .unwrap()
    };
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let start = std::time::Instant::now();
        while !done() {
            assert!(start.elapsed() < Duration::from_secs(30), "{what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let x = Array2::<f32>::ones((3000, 5));
    let body = json!({ "inputs": [json_input("x", &x)] }).to_string();
    for i in 0..4 {
        let admitted = metric("wgpu_lstm_admitted");
        let mut s = TcpStream::connect(server.http).unwrap();
        let head = format!(
            "POST /v2/models/lstm/infer HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body.as_bytes()).unwrap();
        wait_for(&format!("request {i} admitted"), &|| {
            metric("wgpu_lstm_admitted") > admitted
        });
    }
    let small = json!({ "inputs": [json_input("x", &Array2::<f32>::ones((2, 5)))] });
    assert_eq!(
        server.post_json("/v2/models/lstm/infer", &small).status,
        200
    );
    wait_for("every abandoned request's slot freed", &|| {
        metric("wgpu_lstm_slots_in_use") == 0
    });
    assert_eq!(metric("wgpu_lstm_queued"), 0, "nothing left in the queue");
    assert_eq!(
        metric("wgpu_lstm_admitted"),
        5,
        "the half body never reached the batcher"
    );
    println!(
        "admitted {}, cancelled {}",
        metric("wgpu_lstm_admitted"),
        metric("wgpu_lstm_cancelled")
    );
}

/// A POST with a chunked body (no Content-Length); the response's head and body as text.
fn chunked_post(addr: std::net::SocketAddr, path: &str, body: &[u8]) -> String {
    use std::io::Read;
    let mut s = TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    for part in body.chunks(1000) {
        let _ = s.write_all(format!("{:x}\r\n", part.len()).as_bytes());
        let _ = s.write_all(part);
        let _ = s.write_all(b"\r\n");
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).to_string()
}
