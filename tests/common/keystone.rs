//! Keystone helpers for the auth tests: clouds.yaml text for the bed's Keystone, and tokens
//! issued by the tests themselves (not through glint).

use super::Testbed;

pub fn cloud_yaml(bed: &Testbed, auth_type: &str, auth: &str) -> String {
    cloud_yaml_in(bed, &bed.region, auth_type, auth)
}

fn cloud_yaml_in(bed: &Testbed, region: &str, auth_type: &str, auth: &str) -> String {
    format!(
        "clouds:\n  bed:\n    auth_type: {auth_type}\n    region_name: {region}\n    auth:\n      auth_url: {}\n{auth}",
        bed.keystone_url
    )
}

fn password_lines(user: &str, password: &str, project: &str) -> String {
    format!(
        "      username: {user}\n      password: {password}\n      user_domain_name: Default\n      project_name: {project}\n      project_domain_name: Default\n"
    )
}

pub fn password_auth(bed: &Testbed, password: &str) -> String {
    cloud_yaml(
        bed,
        "password",
        &password_lines(&bed.demo_user, password, &bed.demo_project),
    )
}

/// The demo user on Glance C, the production-shaped Glance of the bed's second region.
pub fn production_auth(bed: &Testbed) -> String {
    cloud_yaml_in(
        bed,
        &bed.prod_region,
        "password",
        &password_lines(&bed.demo_user, &bed.demo_password, &bed.demo_project),
    )
}

/// The admin user on Glance C: the role its property protections reserve `locked_*` for.
pub fn production_admin_auth(bed: &Testbed) -> String {
    cloud_yaml_in(
        bed,
        &bed.prod_region,
        "password",
        &password_lines(&bed.admin_user, &bed.admin_password, &bed.admin_project),
    )
}

/// A token for the demo user, scoped to the demo project.
pub async fn demo_token(bed: &Testbed) -> String {
    let body = serde_json::json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": bed.demo_user, "domain": {"name": "Default"}, "password": bed.demo_password}}},
        "scope": {"project": {"id": bed.demo_project_id}}}});
    let response = reqwest::Client::new()
        .post(format!("{}/auth/tokens", bed.keystone_url))
        .json(&body)
        .send()
        .await
        .expect("issue token");
    assert!(response.status().is_success(), "{}", response.status());
    response.headers()["x-subject-token"]
        .to_str()
        .expect("token")
        .to_string()
}

/// A token for the admin user, scoped to the admin project.
pub async fn admin_token(bed: &Testbed) -> String {
    let body = serde_json::json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": bed.admin_user, "domain": {"name": "Default"}, "password": bed.admin_password}}},
        "scope": {"project": {"name": bed.admin_project, "domain": {"name": "Default"}}}}});
    let response = reqwest::Client::new()
        .post(format!("{}/auth/tokens", bed.keystone_url))
        .json(&body)
        .send()
        .await
        .expect("admin token");
    assert!(response.status().is_success(), "{}", response.status());
    response.headers()["x-subject-token"]
        .to_str()
        .expect("token")
        .to_string()
}

/// A second Keystone of the bed whose tokens live `lifetime_seconds`: the same database and
/// fernet keys (so Glance B, which validates with the bed's Keystone, accepts its tokens
/// until they expire), another port and `[token] expiration`. Stopped when dropped.
pub struct ShortLivedKeystone {
    /// The v3 root, for a clouds.yaml's auth_url.
    pub url: String,
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl ShortLivedKeystone {
    pub fn start(bed: &Testbed, lifetime_seconds: u32) -> Self {
        let bed_dir = std::path::Path::new(&bed.testbed_dir).join("keystone");
        let dir = std::env::temp_dir().join(super::unique("short-keystone"));
        std::fs::create_dir_all(&dir).expect("dir");
        let conf = std::fs::read_to_string(bed_dir.join("etc/keystone.conf")).expect("conf");
        let conf = conf.replacen(
            "[token]\n",
            &format!("[token]\nexpiration = {lifetime_seconds}\n"),
            1,
        );
        assert!(
            conf.contains("expiration ="),
            "the bed's keystone.conf has no [token]"
        );
        std::fs::write(dir.join("keystone.conf"), conf).expect("conf");
        let port = super::harness::free_port();
        let ini: String = std::fs::read_to_string(bed_dir.join("uwsgi.ini"))
            .expect("uwsgi.ini")
            .lines()
            .filter(|line| {
                !["daemonize", "pidfile", "http11-socket", "env ="]
                    .iter()
                    .any(|key| line.starts_with(key))
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let ini = format!(
            "{ini}http11-socket = 127.0.0.1:{port}\nenv = OS_KEYSTONE_CONFIG_FILES={}\n",
            dir.join("keystone.conf").display()
        );
        std::fs::write(dir.join("uwsgi.ini"), ini).expect("ini");
        let log = std::fs::File::create(dir.join("uwsgi.log")).expect("log");
        let child = std::process::Command::new(format!("{}/bin/uwsgi", bed.venv))
            .arg("--ini")
            .arg(dir.join("uwsgi.ini"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("uwsgi");
        let url = format!("http://127.0.0.1:{port}/v3");
        let started = std::time::Instant::now();
        while !answers_200(port, "/v3") {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "the short-lived Keystone did not start; see {}",
                dir.join("uwsgi.log").display()
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        Self { url, child, dir }
    }
}

impl ShortLivedKeystone {
    /// How many tokens this Keystone has issued (`POST /v3/auth/tokens` answered 201 in its
    /// uwsgi log): only the test that started it talks to it.
    pub fn tokens_issued(&self) -> usize {
        std::fs::read_to_string(self.dir.join("uwsgi.log"))
            .expect("log")
            .lines()
            .filter(|line| line.contains("POST /v3/auth/tokens") && line.contains("(HTTP/1.1 201)"))
            .count()
    }
}

impl Drop for ShortLivedKeystone {
    fn drop(&mut self) {
        super::harness::stop_process(&mut self.child);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether `GET path` on the loopback port answers 200.
fn answers_200(port: u16, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut socket) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let request = format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n");
    if socket.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    socket.read_exact(&mut head).is_ok() && head.ends_with(b" 200")
}
