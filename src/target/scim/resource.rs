//! A User resource as roster reads it: the few attributes it uses, read straight from an
//! answer's bytes (issue 16), or from a `Value` tree where one is at hand.
//!
//! A listing page of 1,000 users used to become a `serde_json::Value` tree (a map for every
//! object, a `String` for every key and value) only to have seven attributes copied out of
//! it; building and dropping that tree was half of the target reader's time in a no-change
//! plan. `UserReader` streams a page (or one resource) into `RawUser`s instead: strings
//! borrowed from the body where JSON needs no unescaping, everything roster does not read
//! skipped unbuilt.
//!
//! The two readings choose alike. Attribute names are case-insensitive (RFC 7643 §2.1), and
//! where a resource spells one name several ways, `get_ci` on a tree takes the exact
//! spelling, else the first in the map's key order; the same key twice, the last. `Slot`
//! makes that choice as the keys stream past. A value of another JSON type than roster
//! reads is kept only as "something else", so that the verdict (an error, or an attribute
//! taken as absent) is the tree's. `RawUser::into_user` is then the one conversion into a
//! `TargetUser`, whichever way the resource was read; the tests hold the two readings side
//! by side on resources made to disagree.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::{FieldPath, ListPage, PageFault, get_ci};
use crate::model::TargetUser;

/// The attributes a user is read from (lowercase). A configured field whose path starts
/// with one of them is read from the tree instead (`UserReader::new`).
const CORE: [&str; 8] = [
    "id",
    "username",
    "externalid",
    "displayname",
    "active",
    "emails",
    "phonenumbers",
    "meta",
];

/// Reads users straight from answers' bytes, for the configured fields.
#[derive(Debug)]
pub(super) struct UserReader {
    /// The first attribute of each configured field's path (an extension's schema URN, or
    /// the attribute), whose whole value is kept for `FieldPath::read`.
    field_roots: Vec<String>,
}

impl UserReader {
    /// `None` when a configured field starts at one of the attributes a user is read from
    /// (`meta.created`, say): such a resource is read through a tree, which serves both.
    pub(super) fn new(fields: &[FieldPath]) -> Option<UserReader> {
        let field_roots: Vec<String> = fields.iter().map(|f| f.root().to_string()).collect();
        let collides = field_roots
            .iter()
            .any(|root| CORE.iter().any(|core| root.eq_ignore_ascii_case(core)));
        (!collides).then_some(UserReader { field_roots })
    }

    /// One resource (the body of a GET or a create); `None` when the body is not JSON
    /// (its parse into a tree says why).
    pub(super) fn user<'a>(&self, body: &'a [u8]) -> Option<RawUser<'a>> {
        let mut de = serde_json::Deserializer::from_str(utf8(body)?);
        let user = UserSeed(self).deserialize(&mut de).ok()?;
        de.end().ok()?;
        Some(user)
    }

    /// A ListResponse page of users; `None` when the body is not JSON.
    pub(super) fn page<'a>(&self, body: &'a [u8]) -> Option<RawPage<'a>> {
        let mut de = serde_json::Deserializer::from_str(utf8(body)?);
        let page = de.deserialize_any(PageVisitor(self)).ok()?;
        de.end().ok()?;
        Some(page)
    }
}

/// The body as text, checked once: serde_json then takes each string as it is, where
/// reading bytes it checks every string again (a tenth of a page's parse).
fn utf8(body: &[u8]) -> Option<&str> {
    std::str::from_utf8(body).ok()
}

/// The value `get_ci` would find for one attribute name, chosen as the keys come.
#[derive(Debug)]
struct Slot<'a, T> {
    chosen: Option<(Cow<'a, str>, T)>,
}

impl<T> Default for Slot<'_, T> {
    fn default() -> Self {
        Slot { chosen: None }
    }
}

impl<'a, T> Slot<'a, T> {
    /// Whether `key` is a spelling of `name` that `get_ci` would take over the one kept:
    /// the exact spelling over any other, the same key again (the later wins), else the one
    /// first in key order.
    fn takes(&self, name: &str, key: &str) -> bool {
        if !key.eq_ignore_ascii_case(name) {
            return false;
        }
        match &self.chosen {
            None => true,
            Some((kept, _)) => {
                key == kept.as_ref()
                    || key == name
                    || (kept.as_ref() != name && key < kept.as_ref())
            }
        }
    }

    fn put(&mut self, key: Cow<'a, str>, value: T) {
        self.chosen = Some((key, value));
    }

    fn get(&self) -> Option<&T> {
        self.chosen.as_ref().map(|(_, value)| value)
    }

    fn into_value(self) -> Option<T> {
        self.chosen.map(|(_, value)| value)
    }

    /// From a tree: what `get_ci` finds there, converted.
    fn of_tree(
        object: &'a Value,
        name: &'static str,
        convert: impl FnOnce(&'a Value) -> T,
    ) -> Self {
        Slot {
            chosen: get_ci(object, name).map(|value| (Cow::Borrowed(name), convert(value))),
        }
    }
}

/// A value roster reads as a string: a string, or something else.
#[derive(Debug)]
enum Text<'a> {
    Str(Cow<'a, str>),
    Other,
}

impl<'a> Text<'a> {
    fn of_tree(value: &'a Value) -> Text<'a> {
        value
            .as_str()
            .map_or(Text::Other, |s| Text::Str(Cow::Borrowed(s)))
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Text::Str(s) => Some(s),
            Text::Other => None,
        }
    }
}

fn text<'a>(slot: &'a Slot<'_, Text<'_>>) -> Option<&'a str> {
    slot.get().and_then(Text::as_str)
}

/// The elements of a multi-valued attribute; none when it is absent or not a list.
fn elements<'a, 'b>(slot: &'a Slot<'_, Multi<'b>>) -> &'a [Element<'b>] {
    slot.get().and_then(Option::as_deref).unwrap_or_default()
}

/// An element of `emails` or `phoneNumbers`: what roster reads of it. An element that is
/// not an object has none of them, as `get_ci` finds nothing in it.
#[derive(Debug, Default)]
struct Element<'a> {
    value: Slot<'a, Text<'a>>,
    kind: Slot<'a, Text<'a>>,
    /// `primary`, when it is a boolean.
    primary: Slot<'a, Option<bool>>,
}

impl<'a> Element<'a> {
    fn of_tree(value: &'a Value) -> Element<'a> {
        Element {
            value: Slot::of_tree(value, "value", Text::of_tree),
            kind: Slot::of_tree(value, "type", Text::of_tree),
            primary: Slot::of_tree(value, "primary", Value::as_bool),
        }
    }
}

/// A multi-valued attribute: its elements, or `None` when it is not a list.
type Multi<'a> = Option<Vec<Element<'a>>>;

fn multi_of_tree(value: &Value) -> Multi<'_> {
    value
        .as_array()
        .map(|items| items.iter().map(Element::of_tree).collect())
}

/// `meta`: its `version`, or `None` when it is not an object.
type Meta<'a> = Option<Slot<'a, Text<'a>>>;

fn meta_of_tree(value: &Value) -> Meta<'_> {
    value
        .is_object()
        .then(|| Slot::of_tree(value, "version", Text::of_tree))
}

/// What roster reads of a User resource.
#[derive(Debug, Default)]
pub(super) struct RawUser<'a> {
    id: Slot<'a, Text<'a>>,
    user_name: Slot<'a, Text<'a>>,
    external_id: Slot<'a, Text<'a>>,
    display_name: Slot<'a, Text<'a>>,
    active: Slot<'a, Value>,
    emails: Slot<'a, Multi<'a>>,
    phones: Slot<'a, Multi<'a>>,
    meta: Slot<'a, Meta<'a>>,
    /// Where the configured fields are read.
    fields: Fields<'a>,
}

#[derive(Debug)]
enum Fields<'a> {
    /// The resource's tree.
    Tree(&'a Value),
    /// The attributes the fields start at, as `UserReader` kept them from the bytes.
    Kept(Value),
}

impl Default for Fields<'_> {
    fn default() -> Self {
        Fields::Kept(Value::Object(Map::new()))
    }
}

impl<'a> RawUser<'a> {
    /// A resource already parsed into a tree.
    pub(super) fn of_tree(resource: &'a Value) -> RawUser<'a> {
        RawUser {
            id: Slot::of_tree(resource, "id", Text::of_tree),
            user_name: Slot::of_tree(resource, "userName", Text::of_tree),
            external_id: Slot::of_tree(resource, "externalId", Text::of_tree),
            display_name: Slot::of_tree(resource, "displayName", Text::of_tree),
            active: Slot::of_tree(resource, "active", Value::clone),
            emails: Slot::of_tree(resource, "emails", multi_of_tree),
            phones: Slot::of_tree(resource, "phoneNumbers", multi_of_tree),
            meta: Slot::of_tree(resource, "meta", meta_of_tree),
            fields: Fields::Tree(resource),
        }
    }

    /// The user in roster's terms, before its externalId is split into owner and key. The
    /// message says what is wrong with the resource.
    pub(super) fn into_user(self, fields: &[FieldPath]) -> Result<TargetUser, String> {
        let id = text(&self.id)
            .filter(|s| !s.is_empty())
            .ok_or("a user without an id")?;
        let username = text(&self.user_name)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("user {id} has no userName"))?;
        let active = match self.active.get() {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            // Some providers write booleans as strings.
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
            Some(other) => return Err(format!("user {id} has active = {other}, not a boolean")),
        };
        let phones = elements(&self.phones)
            .iter()
            .filter_map(|phone| text(&phone.value))
            .map(str::to_string)
            .collect();
        let emails = elements(&self.emails);
        let email = super::email_index(
            emails,
            |e| e.primary.get() == Some(&Some(true)),
            |e| text(&e.kind).is_some_and(|t| t.eq_ignore_ascii_case("work")),
        )
        .and_then(|i| text(&emails[i].value))
        .map(str::to_string);
        let tree = match &self.fields {
            Fields::Tree(tree) => tree,
            Fields::Kept(kept) => kept,
        };
        let fields = fields
            .iter()
            .filter_map(|f| Some((f.name.clone(), f.read(tree)?.as_str()?.to_string())))
            .collect();
        Ok(TargetUser {
            id: id.to_string(),
            // An empty externalId carries no key: the account is not roster's.
            external_id: text(&self.external_id)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            username: username.to_string(),
            name: text(&self.display_name).map(str::to_string),
            email,
            phones,
            fields,
            active,
            version: self
                .meta
                .get()
                .and_then(Option::as_ref)
                .and_then(text)
                .map(str::to_string),
            owner: None,
        })
    }
}

/// A ListResponse page of users, as `ListPage::of_tree` reads one from a tree.
#[derive(Debug, Default)]
pub(super) struct RawPage<'a> {
    total: Slot<'a, Value>,
    resources: Slot<'a, Resources<'a>>,
}

#[derive(Debug)]
enum Resources<'a> {
    Null,
    List(Vec<RawUser<'a>>),
    Other,
}

impl<'a> RawPage<'a> {
    /// The page, as `page_of_tree` makes one of a tree.
    pub(super) fn into_page(self) -> Result<ListPage<RawUser<'a>>, PageFault> {
        let total = self
            .total
            .get()
            .and_then(Value::as_u64)
            .ok_or(PageFault::NoTotal)?;
        // `Resources` may be left out when there are none (RFC 7644 §3.4.2).
        let users = match self.resources.into_value() {
            None | Some(Resources::Null) => Vec::new(),
            Some(Resources::List(users)) => users,
            Some(Resources::Other) => return Err(PageFault::ResourcesNotAList),
        };
        Ok(ListPage::new(users, total))
    }
}

// ---------------------------------------------------------------------------------------
// Reading the bytes.

/// Implements a visitor's methods for the JSON values it does not read as `$other`,
/// consuming lists and objects whole (and `expecting`: it takes any value).
macro_rules! otherwise {
    ($other:expr, $($skip:ident),*) => {
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        $(otherwise!(@one $other, $skip);)*
    };
    (@one $other:expr, bool) => {
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> { Ok($other) }
    };
    (@one $other:expr, numbers) => {
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> { Ok($other) }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> { Ok($other) }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> { Ok($other) }
    };
    (@one $other:expr, str) => {
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> { Ok($other) }
    };
    (@one $other:expr, unit) => {
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> { Ok($other) }
    };
    (@one $other:expr, seq) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok($other)
        }
    };
    (@one $other:expr, map) => {
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok($other)
        }
    };
}

/// A seed that is its own visitor, taking any JSON value.
macro_rules! any_value_seed {
    ($de:lifetime, $seed:ty => $value:ty) => {
        impl<$de> DeserializeSeed<$de> for $seed {
            type Value = $value;
            fn deserialize<D: Deserializer<$de>>(self, de: D) -> Result<Self::Value, D::Error> {
                de.deserialize_any(self)
            }
        }
    };
}

/// An object key, borrowed from the body when it needs no unescaping.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }
}

/// Offers the value under `key` to `slot` for `name`: read with `seed` when the slot takes
/// it, skipped otherwise. Returns whether `key` was a spelling of `name`.
fn offer<'de, A, S>(
    map: &mut A,
    slot: &mut Slot<'de, S::Value>,
    name: &str,
    key: &Cow<'de, str>,
    seed: S,
) -> Result<bool, A::Error>
where
    A: MapAccess<'de>,
    S: DeserializeSeed<'de>,
{
    if !key.eq_ignore_ascii_case(name) {
        return Ok(false);
    }
    if slot.takes(name, key) {
        let value = map.next_value_seed(seed)?;
        slot.put(key.clone(), value);
    } else {
        map.next_value::<IgnoredAny>()?;
    }
    Ok(true)
}

/// A whole value as a tree.
struct Tree;

impl<'de> DeserializeSeed<'de> for Tree {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        serde::Deserialize::deserialize(de)
    }
}

struct TextSeed;

any_value_seed!('de, TextSeed => Text<'de>);

impl<'de> Visitor<'de> for TextSeed {
    type Value = Text<'de>;
    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Text::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Text::Str(Cow::Owned(v.to_string())))
    }
    otherwise!(Text::Other, bool, numbers, unit, seq, map);
}

/// A boolean, or `None` for anything else.
struct Flag;

any_value_seed!('de, Flag => Option<bool>);

impl<'de> Visitor<'de> for Flag {
    type Value = Option<bool>;
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    otherwise!(None, numbers, str, unit, seq, map);
}

struct ElementSeed;

any_value_seed!('de, ElementSeed => Element<'de>);

impl<'de> Visitor<'de> for ElementSeed {
    type Value = Element<'de>;
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut element = Element::default();
        while let Some(key) = map.next_key_seed(Key)? {
            let read = offer(&mut map, &mut element.value, "value", &key, TextSeed)?
                || offer(&mut map, &mut element.kind, "type", &key, TextSeed)?
                || offer(&mut map, &mut element.primary, "primary", &key, Flag)?;
            if !read {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(element)
    }
    otherwise!(Element::default(), bool, numbers, str, unit, seq);
}

struct MultiSeed;

any_value_seed!('de, MultiSeed => Multi<'de>);

impl<'de> Visitor<'de> for MultiSeed {
    type Value = Multi<'de>;
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut elements = Vec::new();
        while let Some(element) = seq.next_element_seed(ElementSeed)? {
            elements.push(element);
        }
        Ok(Some(elements))
    }
    otherwise!(None, bool, numbers, str, unit, map);
}

struct MetaSeed;

any_value_seed!('de, MetaSeed => Meta<'de>);

impl<'de> Visitor<'de> for MetaSeed {
    type Value = Meta<'de>;
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut version = Slot::default();
        while let Some(key) = map.next_key_seed(Key)? {
            if !offer(&mut map, &mut version, "version", &key, TextSeed)? {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Some(version))
    }
    otherwise!(None, bool, numbers, str, unit, seq);
}

struct UserSeed<'r>(&'r UserReader);

any_value_seed!('de, UserSeed<'_> => RawUser<'de>);

impl<'de> Visitor<'de> for UserSeed<'_> {
    type Value = RawUser<'de>;
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut user = RawUser::default();
        let mut kept = Map::new();
        while let Some(key) = map.next_key_seed(Key)? {
            let read = offer(&mut map, &mut user.id, "id", &key, TextSeed)?
                || offer(&mut map, &mut user.user_name, "userName", &key, TextSeed)?
                || offer(
                    &mut map,
                    &mut user.external_id,
                    "externalId",
                    &key,
                    TextSeed,
                )?
                || offer(
                    &mut map,
                    &mut user.display_name,
                    "displayName",
                    &key,
                    TextSeed,
                )?
                || offer(&mut map, &mut user.active, "active", &key, Tree)?
                || offer(&mut map, &mut user.emails, "emails", &key, MultiSeed)?
                || offer(&mut map, &mut user.phones, "phoneNumbers", &key, MultiSeed)?
                || offer(&mut map, &mut user.meta, "meta", &key, MetaSeed)?;
            if read {
                continue;
            }
            // Every spelling a field's path may start at is kept: `get_ci` then chooses
            // among them as it would in the whole resource.
            let is_root = |root: &String| key.eq_ignore_ascii_case(root);
            if self.0.field_roots.iter().any(is_root) {
                kept.insert(key.into_owned(), map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        user.fields = Fields::Kept(Value::Object(kept));
        Ok(user)
    }
    // Not an object: a resource without an id (the conversion says so).
    otherwise!(RawUser::default(), bool, numbers, str, unit, seq);
}

struct ResourcesSeed<'r>(&'r UserReader);

any_value_seed!('de, ResourcesSeed<'_> => Resources<'de>);

impl<'de> Visitor<'de> for ResourcesSeed<'_> {
    type Value = Resources<'de>;
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut users = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(user) = seq.next_element_seed(UserSeed(self.0))? {
            users.push(user);
        }
        Ok(Resources::List(users))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(Resources::Null)
    }
    otherwise!(Resources::Other, bool, numbers, str, map);
}

struct PageVisitor<'r>(&'r UserReader);

impl<'de> Visitor<'de> for PageVisitor<'_> {
    type Value = RawPage<'de>;
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut page = RawPage::default();
        while let Some(key) = map.next_key_seed(Key)? {
            let read = offer(&mut map, &mut page.total, "totalResults", &key, Tree)?
                || offer(
                    &mut map,
                    &mut page.resources,
                    "Resources",
                    &key,
                    ResourcesSeed(self.0),
                )?;
            if !read {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(page)
    }
    // Not an object: a page without a total (the listing says so).
    otherwise!(RawPage::default(), bool, numbers, str, unit, seq);
}

#[cfg(test)]
mod tests {
    use super::super::page_of_tree;
    use super::*;

    /// A small deterministic generator (xorshift64), so that a failure repeats.
    struct Dice(u64);

    impl Dice {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }

        fn chance(&mut self, percent: usize) -> bool {
            self.below(100) < percent
        }
    }

    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    fn fields() -> Vec<FieldPath> {
        [
            "title",
            "name.givenName",
            &format!("{ENTERPRISE}:employeeNumber"),
        ]
        .iter()
        .map(|f| FieldPath::parse(f).expect("a valid path"))
        .collect()
    }

    /// `name` as the exact spelling mostly, else another case.
    fn spelling(dice: &mut Dice, name: &str) -> String {
        match dice.below(6) {
            0 => name.to_lowercase(),
            1 => name.to_uppercase(),
            2 => {
                let mut chars: Vec<char> = name.chars().collect();
                chars[0] = if chars[0].is_uppercase() {
                    chars[0].to_ascii_lowercase()
                } else {
                    chars[0].to_ascii_uppercase()
                };
                chars.into_iter().collect()
            }
            _ => name.to_string(),
        }
    }

    /// `"key": value` pairs of an object, with some names spelled twice, some keys repeated
    /// and the order shuffled, as the JSON text (duplicates cannot be made through a tree).
    fn object(dice: &mut Dice, entries: Vec<(String, String)>) -> String {
        let mut entries = entries;
        for i in 0..entries.len() {
            if dice.chance(15) {
                let key = spelling(dice, &entries[i].0);
                let value = entries[dice.below(entries.len())].1.clone();
                entries.push((key, value));
            }
        }
        for i in (1..entries.len()).rev() {
            entries.swap(i, dice.below(i + 1));
        }
        let body: Vec<String> = entries
            .iter()
            .map(|(k, v)| format!("{}: {v}", Value::String(k.clone())))
            .collect();
        format!("{{{}}}", body.join(", "))
    }

    const TEXTS: &[&str] = &[
        r#""u1""#,
        r#""x""#,
        r#""""#,
        r#""a\u0041\n""#,
        "7",
        "null",
        "true",
        r#"["x"]"#,
        r#"{"a": 1}"#,
    ];

    fn text(dice: &mut Dice) -> String {
        // Mostly strings, so that most resources read.
        if dice.chance(70) {
            dice.pick(&[r#""u1""#, r#""user\"2""#, r#""Ünï""#])
                .to_string()
        } else {
            dice.pick(TEXTS).to_string()
        }
    }

    fn element(dice: &mut Dice) -> String {
        if dice.chance(10) {
            return dice.pick(&[r#""x""#, "3", "null", "[]"]).to_string();
        }
        let mut entries = Vec::new();
        if dice.chance(80) {
            entries.push((spelling(dice, "value"), text(dice)));
        }
        if dice.chance(50) {
            let kind = dice.pick(&[r#""work""#, r#""WORK""#, r#""home""#, "1"]);
            entries.push((spelling(dice, "type"), kind.to_string()));
        }
        if dice.chance(40) {
            let primary = dice.pick(&["true", "false", r#""true""#, "null"]);
            entries.push((spelling(dice, "primary"), primary.to_string()));
        }
        entries.push(("display".into(), r#""skipped""#.into()));
        object(dice, entries)
    }

    fn multi(dice: &mut Dice) -> String {
        if dice.chance(10) {
            return dice.pick(&[r#""x""#, "null", "{}", "5"]).to_string();
        }
        let items: Vec<String> = (0..dice.below(4)).map(|_| element(dice)).collect();
        format!("[{}]", items.join(", "))
    }

    fn resource(dice: &mut Dice) -> String {
        if dice.chance(3) {
            return dice.pick(&["[]", "3", r#""x""#, "null"]).to_string();
        }
        let mut entries = Vec::new();
        let mut maybe = |dice: &mut Dice, percent, name: &str, value: String| {
            if dice.chance(percent) {
                entries.push((spelling(dice, name), value));
            }
        };
        let id = text(dice);
        maybe(dice, 95, "id", id);
        let user_name = text(dice);
        maybe(dice, 95, "userName", user_name);
        let external_id = text(dice);
        maybe(dice, 70, "externalId", external_id);
        let display_name = text(dice);
        maybe(dice, 70, "displayName", display_name);
        let active = dice
            .pick(&[
                "true",
                "false",
                r#""False""#,
                r#""TRUE""#,
                r#""yes""#,
                "null",
                "1",
                "{}",
            ])
            .to_string();
        maybe(dice, 60, "active", active);
        let emails = multi(dice);
        maybe(dice, 80, "emails", emails);
        let phones = multi(dice);
        maybe(dice, 70, "phoneNumbers", phones);
        let meta = if dice.chance(90) {
            let version = (spelling(dice, "version"), text(dice));
            let location = ("location".to_string(), r#""/Users/1""#.to_string());
            object(dice, vec![version, location])
        } else {
            dice.pick(&["null", r#""v""#, "[]"]).to_string()
        };
        maybe(dice, 80, "meta", meta);
        let title = text(dice);
        maybe(dice, 50, "title", title);
        let given = (spelling(dice, "givenName"), text(dice));
        let name = object(dice, vec![given]);
        maybe(dice, 50, "name", name);
        let number = (spelling(dice, "employeeNumber"), text(dice));
        let extension = object(dice, vec![number]);
        maybe(dice, 40, ENTERPRISE, extension);
        maybe(dice, 50, "schemas", format!(r#"["{ENTERPRISE}"]"#));
        maybe(
            dice,
            30,
            "groups",
            r#"[{"value": "g1", "display": "G"}]"#.into(),
        );
        object(dice, entries)
    }

    fn from_tree(text: &str, fields: &[FieldPath]) -> Result<TargetUser, String> {
        let tree: Value = serde_json::from_str(text).expect("valid JSON");
        RawUser::of_tree(&tree).into_user(fields)
    }

    #[test]
    fn a_resource_read_from_its_bytes_is_the_user_its_tree_makes() {
        let fields = fields();
        let reader = UserReader::new(&fields).expect("no field starts at a core attribute");
        let mut dice = Dice(0x9E37_79B9_7F4A_7C15);
        let (mut read, mut refused) = (0, 0);
        for _ in 0..5_000 {
            let text = resource(&mut dice);
            let streamed = reader
                .user(text.as_bytes())
                .expect("JSON")
                .into_user(&fields);
            assert_eq!(streamed, from_tree(&text, &fields), "{text}");
            if streamed.is_ok() {
                read += 1
            } else {
                refused += 1
            }
        }
        // Both verdicts were exercised, and fields and e-mails were read at all.
        assert!(
            read > 1_000 && refused > 500,
            "{read} read, {refused} refused"
        );
    }

    #[test]
    fn a_page_read_from_its_bytes_is_the_page_its_tree_makes() {
        let fields = fields();
        let reader = UserReader::new(&fields).expect("no field starts at a core attribute");
        let mut dice = Dice(0x2545_F491_4F6C_DD1D);
        type Verdict = Result<(u64, Vec<Result<TargetUser, String>>), PageFault>;
        let (mut faults, mut users) = (0, 0);
        for _ in 0..1_000 {
            let text = if dice.chance(3) {
                dice.pick(&["[]", "3", "null", "{}"]).to_string()
            } else {
                let mut entries = Vec::new();
                if dice.chance(90) {
                    let total = if dice.chance(80) {
                        "3"
                    } else {
                        dice.pick(&["0", r#""3""#, "null", "-1", "2.5"])
                    };
                    entries.push((spelling(&mut dice, "totalResults"), total.to_string()));
                }
                if dice.chance(90) {
                    let resources = if dice.chance(85) {
                        let items: Vec<String> =
                            (0..dice.below(4)).map(|_| resource(&mut dice)).collect();
                        format!("[{}]", items.join(", "))
                    } else {
                        dice.pick(&["null", "{}", r#""x""#]).to_string()
                    };
                    entries.push((spelling(&mut dice, "Resources"), resources));
                }
                entries.push(("itemsPerPage".into(), "3".into()));
                object(&mut dice, entries)
            };
            let streamed: Verdict =
                reader
                    .page(text.as_bytes())
                    .expect("JSON")
                    .into_page()
                    .map(|page| {
                        let users = page.resources.into_iter().map(|u| u.into_user(&fields));
                        (page.total, users.collect())
                    });
            let tree: Value = serde_json::from_str(&text).expect("valid JSON");
            let of_tree: Verdict = page_of_tree(tree).map(|page| {
                let users = page
                    .resources
                    .iter()
                    .map(|r| RawUser::of_tree(r).into_user(&fields));
                (page.total, users.collect())
            });
            assert_eq!(streamed, of_tree, "{text}");
            match &streamed {
                Ok((_, read)) => users += read.len(),
                Err(_) => faults += 1,
            }
        }
        assert!(faults > 50 && users > 300, "{faults} faults, {users} users");
    }

    #[test]
    fn the_first_spelling_in_key_order_is_taken_unless_the_exact_one_is_there() {
        let fields = fields();
        let reader = UserReader::new(&fields).expect("no field starts at a core attribute");
        let cases = [
            // The exact spelling wins wherever it stands.
            (
                r#"{"id": "1", "USERNAME": "a", "userName": "b", "username": "c"}"#,
                "b",
            ),
            // Else the first in key order ("USERNAME" < "UserName" < "username").
            (
                r#"{"id": "1", "username": "c", "UserName": "b", "USERNAME": "a"}"#,
                "a",
            ),
            // The same key twice: the later.
            (r#"{"id": "1", "userName": "a", "userName": "b"}"#, "b"),
        ];
        for (text, username) in cases {
            let user = reader
                .user(text.as_bytes())
                .expect("JSON")
                .into_user(&fields);
            assert_eq!(
                user.as_ref().map(|u| u.username.as_str()),
                Ok(username),
                "{text}"
            );
            assert_eq!(user, from_tree(text, &fields), "{text}");
        }
        // A chosen spelling that is not a string is not replaced by one that is.
        let text = r#"{"id": "1", "userName": 5, "username": "c"}"#;
        let user = reader
            .user(text.as_bytes())
            .expect("JSON")
            .into_user(&fields);
        assert_eq!(user, Err("user 1 has no userName".to_string()));
        assert_eq!(user, from_tree(text, &fields));
    }

    #[test]
    fn a_body_that_is_not_json_is_not_read() {
        let reader = UserReader::new(&[]).expect("no fields");
        for body in [&b"{\"id\": \"\xff\"}"[..], b"{} x", b"", b"{\"id\": "] {
            assert!(reader.user(body).is_none(), "{body:?}");
            assert!(reader.page(body).is_none(), "{body:?}");
            // The tree's parse refuses it too, and says why (`not_json`).
            assert!(serde_json::from_slice::<Value>(body).is_err(), "{body:?}");
        }
    }

    #[test]
    fn a_field_at_a_core_attribute_is_read_from_the_tree() {
        let path = |p: &str| FieldPath::parse(p).expect("a valid path");
        assert!(UserReader::new(&[path("meta.created")]).is_none());
        assert!(UserReader::new(&[path("Emails")]).is_none());
        assert!(UserReader::new(&[path("title"), path("name.givenName")]).is_some());
    }
}
