use std::borrow::Cow;

use chain_core::{BoxFuture, HasExtensions, Link, Middleware, Next, RequestMeta, Result};
use serde::Serialize;
use serde_json::Value;

use super::AuthManager;
use super::error::AuthFailure;
use super::store::Role;

/// Who made the request, as the [`auth`] middleware found it. Stored as a
/// typed extension and, on a context with JSON fields, as the
/// `authenticated_user` field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthenticatedUser {
    /// The user's name.
    pub username: String,
    /// The user's role.
    pub role: Role,
}

/// Requires a valid bearer token, and one of `required_roles` (any role if
/// empty), before the wrapped links run.
///
/// Reads `Authorization: Bearer <token>` from the context's
/// [`RequestMeta`] extension, which the HTTP edge fills (the header name in
/// any case). The token is never read from, or written to, the context's
/// JSON fields: those are logged, published and sent to other services.
/// Missing or invalid tokens stop the chain
/// with an [`Unauthorized`](chain_core::ErrorKind::Unauthorized) error, a
/// role that is not allowed with a [`Forbidden`](chain_core::ErrorKind::Forbidden)
/// one; the source is an [`AuthFailure`].
///
/// It works on [`Context`](chain_core::Context) and on any typed context
/// implementing [`HasExtensions`]: the token comes from the `RequestMeta`
/// extension and the user goes into an extension.
///
/// Attach it once per execution with
/// [`Chain::around`](chain_core::Chain::around): the token is verified once
/// however many links follow. (`Chain::around_each` would verify it again
/// before every link.) It is also a link, for chains that check first and
/// go on.
pub fn auth(manager: &AuthManager, required_roles: impl IntoIterator<Item = Role>) -> Auth {
    Auth {
        manager: manager.clone(),
        required: required_roles.into_iter().collect(),
    }
}

/// Made by [`auth`].
#[derive(Debug, Clone)]
pub struct Auth {
    manager: AuthManager,
    required: Vec<Role>,
}

impl Auth {
    fn admit<C: HasExtensions>(&self, mut ctx: C) -> Result<C> {
        let token = bearer_token(&ctx).ok_or_else(|| AuthFailure::MissingToken.into_error())?;
        let claims = self.manager.verify_token(token)?;
        if !self.required.is_empty() && !self.required.contains(&claims.role) {
            return Err(AuthFailure::InsufficientRole {
                role: claims.role.to_string(),
                required: self.required.iter().map(ToString::to_string).collect(),
            }
            .into_error());
        }
        let user = AuthenticatedUser {
            username: claims.sub,
            role: claims.role,
        };
        if let Some(fields) = ctx.fields_mut() {
            fields.insert_serde("authenticated_user", &user)?;
        }
        ctx.extensions_mut().insert(user);
        Ok(ctx)
    }
}

fn bearer_token<C: HasExtensions>(ctx: &C) -> Option<&str> {
    ctx.extensions().get::<RequestMeta>()?.bearer_token()
}

impl<C: HasExtensions + Send + 'static> Middleware<C> for Auth {
    fn call(&self, ctx: C, next: Next<C>) -> BoxFuture<'_, Result<C>> {
        let admitted = self.admit(ctx);
        Box::pin(async move { next.run(admitted?).await })
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Owned(format!(
            "auth({})",
            self.required
                .iter()
                .map(Role::as_str)
                .collect::<Vec<_>>()
                .join(",")
        ))
    }
}

impl<C: HasExtensions + Send + 'static> Link<C> for Auth {
    fn call(&self, ctx: C) -> BoxFuture<'_, Result<C>> {
        Box::pin(std::future::ready(self.admit(ctx)))
    }

    fn name(&self) -> Cow<'static, str> {
        Middleware::<C>::name(self)
    }
}

impl From<AuthenticatedUser> for Value {
    fn from(user: AuthenticatedUser) -> Self {
        serde_json::json!({"username": user.username, "role": user.role.as_str()})
    }
}
