//! Keystone helpers for the auth tests: clouds.yaml text for the bed's Keystone, and tokens
//! issued by the tests themselves (not through glint).

use super::Testbed;

pub fn cloud_yaml(bed: &Testbed, auth_type: &str, auth: &str) -> String {
    format!(
        "clouds:\n  bed:\n    auth_type: {auth_type}\n    region_name: {}\n    auth:\n      auth_url: {}\n{auth}",
        bed.region, bed.keystone_url
    )
}

pub fn password_auth(bed: &Testbed, password: &str) -> String {
    cloud_yaml(
        bed,
        "password",
        &format!(
            "      username: {}\n      password: {password}\n      user_domain_name: Default\n      project_name: {}\n      project_domain_name: Default\n",
            bed.demo_user, bed.demo_project
        ),
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
