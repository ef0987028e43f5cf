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
