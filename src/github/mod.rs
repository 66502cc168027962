//! Everything GitHub-shaped: typed webhook events and the decision of what each one starts.

pub mod events;
pub mod route;
