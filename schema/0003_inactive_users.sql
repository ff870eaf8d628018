-- roster state store: desired users the source keeps out of service.
-- Never edit or remove a migration once it has landed: add a new numbered file instead.

-- 0 for an account the source lists as out of service (Active Directory `disabled "inactive"`):
-- it is synced as an inactive account. Rows stored before this column existed were active.
ALTER TABLE desired_users ADD COLUMN active INTEGER NOT NULL DEFAULT 1;
