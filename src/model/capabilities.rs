//! What a kind of target can hold and do, stated once, so that the planner, `roster validate`
//! and the applier ask instead of assuming every target is SCIM.
//!
//! It lives in the model (the bottom layer) because the config checker, which knows only
//! which kind of target a config names, and the connectors, which know the rest, both need it.

/// What a target can hold and do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// The target stores roster's key with each account (SCIM `externalId`). Without it,
    /// roster's ownership records in the state store say which accounts are its own.
    pub external_ids: bool,
    /// The target keeps, with each account, the owner that wrote it (SCIM: in the
    /// externalId), so ownership survives a lost state store.
    pub owner_on_target: bool,
    /// An account's username can be changed. Without it (LoginTC), a rename in the source
    /// cannot be applied and is rejected at plan time.
    pub renames: bool,
    /// Objects carry versions (ETags); without them staleness compares content digests.
    pub versions: bool,
    /// Accounts have an active flag that can be turned off (SCIM `active`).
    pub active_flag: bool,
    /// Accounts hold phone numbers.
    pub phones: bool,
    /// Accounts hold other fields a mapping may name (`alias`, `attribute ... to=`).
    pub extra_fields: bool,
    /// The target has groups roster can sync.
    pub groups: bool,
    /// The target issues tokens to the accounts it adds (LoginTC).
    pub token_issue: bool,
    /// A bulk endpoint always exists (Luma's upload). Whether a SCIM provider serves `/Bulk`
    /// is known only from the provider (`Target::bulk_creates`), so `SCIM` says no here.
    pub bulk: bool,
    /// The longest username and name the target takes, in characters, if it says.
    pub max_text_chars: Option<usize>,
    /// Every account must have an email address.
    pub needs_email: bool,
}

impl Capabilities {
    /// A SCIM 2.0 service, as RFC 7643/7644 define it.
    pub const SCIM: Capabilities = Capabilities {
        external_ids: true,
        owner_on_target: true,
        renames: true,
        versions: true,
        active_flag: true,
        phones: true,
        extra_fields: true,
        groups: true,
        token_issue: false,
        bulk: false,
        max_text_chars: None,
        needs_email: false,
    };

    /// The LoginTC Admin API: users with a username, a name and an email, in domains, with
    /// tokens. No externalId, no versions, no active flag, and no aliases or phones in the
    /// public API.
    pub const LOGINTC: Capabilities = Capabilities {
        external_ids: false,
        owner_on_target: false,
        // "Updating the username is not permitted" (the official clients).
        renames: false,
        versions: false,
        active_flag: false,
        phones: false,
        extra_fields: false,
        groups: false,
        token_issue: true,
        bulk: false,
        max_text_chars: Some(128),
        needs_email: true,
    };

    /// A file roster writes for another system to import (`target "file"`): every column
    /// a mapping names, an `active` column, no groups, no versions (staleness compares the
    /// rows). The key is a column of its own, so every row is roster's.
    pub const FILE: Capabilities = Capabilities {
        external_ids: true,
        owner_on_target: false,
        renames: true,
        versions: false,
        active_flag: true,
        phones: true,
        extra_fields: true,
        groups: false,
        token_issue: false,
        bulk: false,
        max_text_chars: None,
        needs_email: false,
    };

    /// xMatters people (REST API v1): `externalKey` holds roster's key, `status` is the
    /// active flag, email and phones are devices (phones additive), and the person fields
    /// a mapping may name are the ones `XMATTERS_FIELDS` lists. No versions, no groups here.
    pub const XMATTERS: Capabilities = Capabilities {
        external_ids: true,
        owner_on_target: false,
        renames: true,
        versions: false,
        active_flag: true,
        phones: true,
        extra_fields: true,
        groups: false,
        token_issue: false,
        bulk: false,
        max_text_chars: None,
        needs_email: false,
    };

    /// Luma's bulk upload: contacts written into the tenant's template and uploaded. The
    /// upload adds and updates; it has no listing, no active flag and no way to take a
    /// contact out, and a new username would make a new contact rather than rename one.
    pub const LUMA: Capabilities = Capabilities {
        external_ids: true,
        owner_on_target: false,
        renames: false,
        versions: false,
        active_flag: false,
        phones: true,
        extra_fields: true,
        groups: false,
        token_issue: false,
        bulk: true,
        max_text_chars: None,
        needs_email: false,
    };
}
