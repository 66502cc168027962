//! Everything GitHub-shaped: typed webhook events and the decision of what each one starts,
//! the app's authentication, the REST client and the [`crate::platform::Platform`] on GitHub.

pub mod app;
pub mod client;
pub mod events;
pub mod platform;
pub mod route;
