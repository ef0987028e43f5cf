//! Who is asking, and what Glance's default policy lets them see and change.
//!
//! With auth `none` a request carries no identity and acts as the cloud's administrator, which
//! is what a single user on their own machine expects. A request with Glance's trusted
//! identity headers (`X-Identity-Status: Confirmed`, `X-Project-Id`, `X-Roles`) acts as that
//! project, so the same contract tests can run against the real Glance and this one. With a
//! Keystone ([`super::keystone`]) only the validated token says who is asking: those headers
//! are then ignored, as keystonemiddleware overwrites them in front of Glance.

use http::HeaderMap;

use super::CloudError;
use super::image::ImageRecord;
use crate::vocabulary::Visibility;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The project acting; `None` for the local administrator.
    pub project: Option<String>,
    /// The user acting, when the request says (recorded on import tasks, as Glance does).
    pub user: Option<String>,
    pub admin: bool,
}

impl Caller {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string)
        };
        if text("x-identity-status").as_deref() != Some("Confirmed") {
            return Self {
                project: None,
                user: None,
                admin: true,
            };
        }
        let roles = text("x-roles").unwrap_or_default();
        Self {
            project: text("x-project-id").filter(|project| !project.is_empty()),
            user: text("x-user-id").filter(|user| !user.is_empty()),
            admin: roles.split(',').any(|role| role.trim() == "admin"),
        }
    }

    /// The caller a validated token stands for: its project, an administrator when one of its
    /// roles is `admin` (Glance's default policy).
    pub fn identified(project: Option<String>, user: Option<String>, roles: &[String]) -> Self {
        Self {
            project: project.filter(|project| !project.is_empty()),
            user,
            admin: roles.iter().any(|role| role == "admin"),
        }
    }

    fn owns(&self, image: &ImageRecord) -> bool {
        self.project.as_deref() == Some(image.owner.as_str())
    }

    fn member_status<'a>(&self, image: &'a ImageRecord) -> Option<&'a str> {
        let project = self.project.as_deref()?;
        image
            .members
            .iter()
            .find(|member| member.member_id == project)
            .map(|member| member.status.as_str())
    }

    /// Whether a GET by id finds the image.
    pub fn can_see(&self, image: &ImageRecord) -> bool {
        self.admin
            || self.owns(image)
            || matches!(image.visibility, Visibility::Public | Visibility::Community)
            || (image.visibility == Visibility::Shared && self.member_status(image).is_some())
    }

    /// Whether a listing shows the image: as Glance does, community images only when asked
    /// for, and shared ones once the member accepted them (unless a member_status is asked).
    pub fn lists(
        &self,
        image: &ImageRecord,
        visibility: Option<&str>,
        member_status: Option<&str>,
    ) -> bool {
        if self.admin || self.owns(image) {
            return true;
        }
        match image.visibility {
            Visibility::Public => true,
            Visibility::Community => visibility == Some(Visibility::Community.as_str()),
            Visibility::Shared => match (self.member_status(image), member_status) {
                (None, _) => false,
                (Some(status), None) => status == "accepted",
                (Some(status), Some(wanted)) => wanted == "all" || status == wanted,
            },
            _ => false,
        }
    }

    /// Refuses changes to an image the caller does not own.
    pub fn require_owner(&self, image: &ImageRecord) -> Result<(), CloudError> {
        if self.admin || self.owns(image) {
            Ok(())
        } else {
            Err(CloudError::Forbidden(format!(
                "You are not permitted to modify image {}: it belongs to another project.",
                image.id
            )))
        }
    }

    /// Only administrators make images public, as in Glance's default policy.
    pub fn require_may_publicize(&self, image: &ImageRecord) -> Result<(), CloudError> {
        if image.visibility == Visibility::Public && !self.admin {
            Err(CloudError::Forbidden(
                "You are not authorized to set image visibility to public: only administrators can."
                    .into(),
            ))
        } else {
            Ok(())
        }
    }

    /// The project that owns what this caller creates.
    pub fn owner(&self, default: &str) -> String {
        self.project.clone().unwrap_or_else(|| default.to_string())
    }

    /// The owner of a new image whose create asked for `asked` (Glance's `owner` field): an
    /// administrator may name any project, anyone else only their own.
    pub fn owner_of_new_image(
        &self,
        asked: Option<&serde_json::Value>,
        default: &str,
    ) -> Result<String, CloudError> {
        let own = self.owner(default);
        match asked {
            None | Some(serde_json::Value::Null) => Ok(own),
            Some(serde_json::Value::String(owner)) if self.admin || *owner == own => {
                Ok(owner.clone())
            }
            Some(serde_json::Value::String(owner)) => Err(CloudError::Forbidden(format!(
                "You are not permitted to create images owned by '{owner}'."
            ))),
            Some(other) => Err(CloudError::BadRequest(format!(
                "Invalid value for owner: {other} is not a project id"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::glance_server::image::MemberRecord;

    fn image(owner: &str, visibility: &str, members: &[(&str, &str)]) -> ImageRecord {
        let mut image = ImageRecord::create(
            &serde_json::json!({}),
            owner,
            "2026-01-01T00:00:00Z",
            &Default::default(),
        )
        .expect("create");
        image.visibility = visibility.into();
        image.members = members
            .iter()
            .map(|(project, status)| MemberRecord {
                member_id: project.to_string(),
                status: status.to_string(),
                created_at: String::new(),
                updated_at: String::new(),
            })
            .collect();
        image
    }

    fn project(name: &str) -> Caller {
        Caller {
            project: Some(name.into()),
            user: None,
            admin: false,
        }
    }

    #[test]
    fn a_request_without_identity_headers_is_the_local_administrator() {
        let caller = Caller::from_headers(&HeaderMap::new());
        assert!(caller.admin && caller.project.is_none());
        let mut headers = HeaderMap::new();
        headers.insert("x-identity-status", "Confirmed".parse().unwrap());
        headers.insert("x-project-id", "p1".parse().unwrap());
        headers.insert("x-roles", "member,reader".parse().unwrap());
        assert_eq!(Caller::from_headers(&headers), project("p1"));
    }

    #[test]
    fn who_sees_and_lists_an_image_follows_its_visibility_and_members() {
        // (visibility, members, caller, can see, listed by default)
        let table = [
            ("private", vec![], "owner", true, true),
            ("private", vec![], "other", false, false),
            ("public", vec![], "other", true, true),
            ("community", vec![], "other", true, false),
            ("shared", vec![("other", "pending")], "other", true, false),
            ("shared", vec![("other", "accepted")], "other", true, true),
            ("shared", vec![("third", "accepted")], "other", false, false),
        ];
        for (visibility, members, who, sees, listed) in table {
            let image = image("owner", visibility, &members);
            let caller = project(who);
            assert_eq!(
                caller.can_see(&image),
                sees,
                "{visibility} {members:?} sees {who}"
            );
            assert_eq!(
                caller.lists(&image, None, None),
                listed,
                "{visibility} {members:?} lists {who}"
            );
        }
    }

    #[test]
    fn only_an_administrator_creates_images_for_another_project() {
        let admin = Caller::identified(Some("p-admin".into()), None, &["admin".into()]);
        let other = serde_json::json!("p2");
        assert_eq!(
            admin.owner_of_new_image(Some(&other), "local").ok(),
            Some("p2".into())
        );
        assert_eq!(
            admin.owner_of_new_image(None, "local").ok(),
            Some("p-admin".into())
        );
        let member = project("p1");
        assert_eq!(
            member
                .owner_of_new_image(Some(&other), "local")
                .map_err(|e| e.reason()),
            Err("Forbidden")
        );
        let own = serde_json::json!("p1");
        assert_eq!(
            member.owner_of_new_image(Some(&own), "local").ok(),
            Some("p1".into())
        );
        let number = serde_json::json!(7);
        assert_eq!(
            member
                .owner_of_new_image(Some(&number), "local")
                .map_err(|e| e.reason()),
            Err("BadRequest")
        );
    }

    #[test]
    fn only_owners_change_images_and_only_administrators_publicize() {
        let image = image("owner", "public", &[]);
        assert!(project("owner").require_owner(&image).is_ok());
        assert_eq!(
            project("other").require_owner(&image).unwrap_err().reason(),
            "Forbidden"
        );
        assert!(project("owner").require_may_publicize(&image).is_err());
        assert!(
            Caller::from_headers(&HeaderMap::new())
                .require_may_publicize(&image)
                .is_ok()
        );
    }
}
