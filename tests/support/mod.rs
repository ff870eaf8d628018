pub mod scim;
