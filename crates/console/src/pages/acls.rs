//! `/acls`: the cluster's ACL bindings (Describe on the cluster), filtered by principal or
//! resource name; a form that adds one and a button that removes each (Alter on the
//! cluster), as `shale acl add|remove` and Kafka's `CreateAcls`/`DeleteAcls` do.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;

use shale_broker::api::{AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType};

use crate::Console;
use crate::session::Session;
use crate::view::{Chrome, Failure, Refusal, page_with, refusal, status_of};

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Search {
    #[serde(default)]
    q: String,
}

/// The add form as sent (kept when it is refused).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AclForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    principal: String,
    #[serde(default)]
    resource_type: String,
    #[serde(default)]
    pattern_type: String,
    #[serde(default)]
    resource_name: String,
    #[serde(default)]
    operation: String,
    #[serde(default)]
    permission: String,
    /// `remove` to delete the binding the fields name, else add it.
    #[serde(default)]
    action: String,
}

#[derive(Debug, Template)]
#[template(path = "acls.html")]
struct AclsPage {
    chrome: Chrome,
    q: String,
    rows: Vec<AclBinding>,
    resource_types: &'static [ResourceType],
    pattern_types: &'static [PatternType],
    operations: &'static [Operation],
    permissions: &'static [Permission],
    form: AclForm,
    error: Option<String>,
}

async fn render(
    st: &Console,
    session: &Session,
    q: String,
    form: AclForm,
    refused: Option<Refusal>,
) -> Result<Response, Failure> {
    let mut rows = st.api.describe_acls(&session.who, &AclFilter::default()).await?;
    let needle = q.trim();
    rows.retain(|b| {
        needle.is_empty() || b.principal.contains(needle) || b.resource_name.contains(needle)
    });
    rows.sort_by(|a, b| (&a.principal, &a.resource_name).cmp(&(&b.principal, &b.resource_name)));
    let (status, error) = refusal(refused);
    let answer = page_with(
        status,
        &AclsPage {
            chrome: session.chrome(st, "acls"),
            q,
            rows,
            resource_types: ResourceType::ALL,
            pattern_types: PatternType::ALL,
            operations: Operation::ALL,
            permissions: Permission::ALL,
            form,
            error,
        },
    );
    Ok(answer)
}

pub(crate) async fn list(
    State(st): State<Arc<Console>>,
    Extension(session): Extension<Session>,
    Query(s): Query<Search>,
) -> Result<Response, Failure> {
    render(&st, &session, s.q, AclForm::default(), None).await
}

/// The binding the form names, each field checked by name.
fn binding(f: &AclForm) -> Result<AclBinding, String> {
    let principal = f.principal.trim().to_string();
    if !principal.contains(':') {
        return Err(format!("principal {principal:?} is not Type:name (User:alice, User:*)"));
    }
    let resource_type = ResourceType::parse(&f.resource_type).map_err(|e| e.message)?;
    let resource_name = match resource_type {
        ResourceType::Cluster => "cluster".to_string(),
        _ => f.resource_name.trim().to_string(),
    };
    if resource_name.is_empty() {
        return Err("give a resource name (or * for every one)".to_string());
    }
    Ok(AclBinding {
        principal,
        resource_type,
        pattern_type: PatternType::parse(&f.pattern_type).map_err(|e| e.message)?,
        resource_name,
        operation: Operation::parse(&f.operation).map_err(|e| e.message)?,
        permission: Permission::parse(&f.permission).map_err(|e| e.message)?,
    })
}

pub(crate) async fn change(
    State(st): State<Arc<Console>>,
    Extension(session): Extension<Session>,
    Form(form): Form<AclForm>,
) -> Result<Response, Failure> {
    super::may_change(&st, &session, &form.csrf)?;
    let b = match binding(&form) {
        Ok(b) => b,
        Err(why) => {
            return render(
                &st,
                &session,
                String::new(),
                form,
                Some((StatusCode::BAD_REQUEST, why)),
            )
            .await;
        }
    };
    let done = match form.action.as_str() {
        "remove" => {
            let filter = AclFilter {
                principal: Some(b.principal),
                resource_type: Some(b.resource_type),
                pattern_type: Some(b.pattern_type),
                resource_name: Some(b.resource_name),
                operation: Some(b.operation),
                permission: Some(b.permission),
            };
            st.api.delete_acls(&session.who, &filter).await.map(drop)
        }
        _ => st.api.create_acls(&session.who, &[b]).await,
    };
    match done {
        Ok(()) => Ok(Redirect::to("/acls").into_response()),
        Err(e) => {
            let refused = Some((status_of(&e), e.message));
            render(&st, &session, String::new(), form, refused).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bindings_fields_are_checked_by_name() {
        let mut f = AclForm {
            principal: "User:alice".into(),
            resource_type: "topic".into(),
            pattern_type: "prefixed".into(),
            resource_name: "orders-".into(),
            operation: "read".into(),
            permission: "allow".into(),
            ..Default::default()
        };
        let b = binding(&f).unwrap();
        assert_eq!((b.principal.as_str(), b.operation), ("User:alice", Operation::Read));
        f.principal = "alice".into();
        assert!(binding(&f).unwrap_err().contains("\"alice\""));
        f.principal = "User:alice".into();
        f.operation = "peek".into();
        assert!(binding(&f).unwrap_err().contains("\"peek\""));
    }
}
