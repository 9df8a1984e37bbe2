//! Rules, the builder, loading from TOML/JSON, and the decision.

use std::fmt;
use std::sync::Arc;

use serde::Deserialize;

use crate::Roles;

/// What a rule (or the default) does to the requests it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Let the request through.
    Allow,
    /// Refuse it.
    Deny,
}

/// What a rule governs: JSON-RPC methods, or tools, resources or prompts by
/// name (resources by URI).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Any JSON-RPC method by name (`tools/call`, `logging/setLevel`, …).
    Method,
    /// `tools/call` by `params.name`; filters `tools/list`.
    Tool,
    /// `resources/read` (and `resources/subscribe`, `resources/unsubscribe`)
    /// by `params.uri`; filters `resources/list` (by `uri`) and
    /// `resources/templates/list` (by `uriTemplate`).
    Resource,
    /// `prompts/get` by `params.name`; filters `prompts/list`.
    Prompt,
}

impl Kind {
    /// The kind of name a method carries, if it carries one the rules match.
    pub fn of_method(method: &str) -> Option<Kind> {
        match method {
            "tools/call" => Some(Kind::Tool),
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                Some(Kind::Resource)
            }
            "prompts/get" => Some(Kind::Prompt),
            _ => None,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::Method => "method",
            Kind::Tool => "tool",
            Kind::Resource => "resource",
            Kind::Prompt => "prompt",
        }
    }
}

/// A name pattern: exact, or with `*` wildcards (each matches any run of
/// characters, `/` included): `admin_*`, `file:///public/*`, `*`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pattern {
    source: Box<str>,
    wildcard: bool,
}

impl Pattern {
    /// Parses a pattern; empty ones are refused.
    pub fn new(source: &str) -> Result<Pattern, String> {
        if source.is_empty() {
            return Err("empty pattern".into());
        }
        Ok(Pattern {
            source: source.into(),
            wildcard: source.contains('*'),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        if !self.wildcard {
            return *self.source == *name;
        }
        glob(self.source.as_bytes(), name.as_bytes())
    }
}

/// `*`-only glob, iterative with one backtrack point: linear in practice,
/// never exponential.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// One rule: an effect, the roles it applies to, and what it matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    name: Option<Box<str>>,
    effect: Effect,
    /// `None`: every caller that passed the session layer (`"*"`).
    roles: Option<Box<[Box<str>]>>,
    kind: Kind,
    patterns: Box<[Pattern]>,
}

impl Rule {
    /// A rule that allows `roles` (`"*"`: every caller) the targets added
    /// next ([`tools`](RuleBuilder::tools), [`resources`](RuleBuilder::resources),
    /// [`prompts`](RuleBuilder::prompts) or [`methods`](RuleBuilder::methods)).
    pub fn allow<R: AsRef<str>>(roles: impl IntoIterator<Item = R>) -> RuleBuilder {
        RuleBuilder::new(Effect::Allow, roles)
    }

    /// A rule that denies `roles` (`"*"`: every caller) the targets added
    /// next. A matching deny always wins over a matching allow.
    pub fn deny<R: AsRef<str>>(roles: impl IntoIterator<Item = R>) -> RuleBuilder {
        RuleBuilder::new(Effect::Deny, roles)
    }

    /// The rule's name (used in error messages), if it has one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Allow or deny.
    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// What it matches.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The roles it applies to; `None` for every caller.
    pub fn roles(&self) -> Option<impl Iterator<Item = &str>> {
        self.roles.as_ref().map(|r| r.iter().map(|r| &**r))
    }

    /// Its patterns.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether it governs this request (whoever the caller).
    pub fn matches(&self, method: &str, name: Option<&str>) -> bool {
        match self.kind {
            Kind::Method => self.patterns.iter().any(|p| p.matches(method)),
            kind => {
                Kind::of_method(method) == Some(kind)
                    && name.is_some_and(|name| self.patterns.iter().any(|p| p.matches(name)))
            }
        }
    }

    /// Whether it applies to a caller with these roles.
    pub fn applies_to(&self, roles: &Roles) -> bool {
        match &self.roles {
            None => true,
            Some(wanted) => wanted.iter().any(|r| roles.contains(r)),
        }
    }

    fn label(&self, index: usize) -> String {
        match &self.name {
            Some(name) => format!("`{name}`"),
            None => format!("#{}", index + 1),
        }
    }
}

/// Builds a [`Rule`]; pick its targets with one of the methods below.
#[derive(Clone, Debug)]
pub struct RuleBuilder {
    name: Option<Box<str>>,
    effect: Effect,
    roles: Vec<String>,
}

impl RuleBuilder {
    fn new<R: AsRef<str>>(effect: Effect, roles: impl IntoIterator<Item = R>) -> Self {
        RuleBuilder {
            name: None,
            effect,
            roles: roles.into_iter().map(|r| r.as_ref().to_string()).collect(),
        }
    }

    /// Names the rule (denial messages and loading errors use it).
    pub fn named(mut self, name: impl AsRef<str>) -> Self {
        self.name = Some(name.as_ref().into());
        self
    }

    /// Targets tools by name (patterns allowed).
    pub fn tools<P: AsRef<str>>(self, patterns: impl IntoIterator<Item = P>) -> PendingRule {
        self.target(Kind::Tool, patterns)
    }

    /// Targets resources by URI (patterns allowed: `file:///public/*`).
    pub fn resources<P: AsRef<str>>(self, patterns: impl IntoIterator<Item = P>) -> PendingRule {
        self.target(Kind::Resource, patterns)
    }

    /// Targets prompts by name (patterns allowed).
    pub fn prompts<P: AsRef<str>>(self, patterns: impl IntoIterator<Item = P>) -> PendingRule {
        self.target(Kind::Prompt, patterns)
    }

    /// Targets JSON-RPC methods by name (patterns allowed: `tasks/*`).
    pub fn methods<P: AsRef<str>>(self, patterns: impl IntoIterator<Item = P>) -> PendingRule {
        self.target(Kind::Method, patterns)
    }

    fn target<P: AsRef<str>>(
        self,
        kind: Kind,
        patterns: impl IntoIterator<Item = P>,
    ) -> PendingRule {
        PendingRule {
            builder: self,
            kind,
            patterns: patterns
                .into_iter()
                .map(|p| p.as_ref().to_string())
                .collect(),
        }
    }
}

/// A rule with its targets, checked when the policy is built.
#[derive(Clone, Debug)]
pub struct PendingRule {
    builder: RuleBuilder,
    kind: Kind,
    patterns: Vec<String>,
}

impl PendingRule {
    fn build(self) -> Result<Rule, String> {
        let RuleBuilder {
            name,
            effect,
            roles,
        } = self.builder;
        if roles.is_empty() {
            return Err(
                "`roles` is empty: name at least one role, or \"*\" for every caller".into(),
            );
        }
        let roles = if roles.iter().any(|r| r == "*") {
            if roles.len() > 1 {
                return Err("`roles` mixes \"*\" (every caller) with named roles".into());
            }
            None
        } else {
            if roles.iter().any(String::is_empty) {
                return Err("`roles` holds an empty role name".into());
            }
            Some(roles.into_iter().map(Into::into).collect())
        };
        if self.patterns.is_empty() {
            return Err(format!("`{}s` is empty", self.kind.noun()));
        }
        let patterns = self
            .patterns
            .iter()
            .map(|p| {
                Pattern::new(p).map_err(|e| format!("{} pattern {p:?}: {e}", self.kind.noun()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Rule {
            name,
            effect,
            roles,
            kind: self.kind,
            patterns,
        })
    }
}

/// Why a policy could not be built or loaded. The message names the rule at
/// fault (its `name`, or its position from 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyError {
    /// The document is not valid TOML/JSON, or its top level is wrong (no
    /// `default`, an unknown key).
    Document(String),
    /// One rule is wrong.
    Rule {
        /// Its position, from 1.
        position: usize,
        /// Its `name`, if it has one.
        name: Option<String>,
        /// What is wrong.
        message: String,
    },
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::Document(message) => write!(f, "policy: {message}"),
            PolicyError::Rule {
                position,
                name: Some(name),
                message,
            } => write!(f, "policy rule #{position} ({name:?}): {message}"),
            PolicyError::Rule {
                position,
                name: None,
                message,
            } => write!(f, "policy rule #{position}: {message}"),
        }
    }
}

impl std::error::Error for PolicyError {}

/// The outcome for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go on.
    Allow,
    /// Refused; the message says what is missing.
    Deny(Denial),
}

impl Decision {
    /// Whether the request may go on.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }
}

/// Why a request was refused, as a message for the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    message: String,
}

impl Denial {
    /// "tool `admin_echo` requires role `admin`", and the like.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Which methods are never subject to rules: the protocol's plumbing.
/// Notifications (`notifications/…`) carry no request a tool could serve.
pub fn is_exempt(method: &str) -> bool {
    matches!(method, "initialize" | "ping" | "server/discover")
        || method.starts_with("notifications/")
}

/// The list methods the layer filters; allowed unless a rule says otherwise.
pub fn is_list(method: &str) -> bool {
    matches!(
        method,
        "tools/list" | "resources/list" | "resources/templates/list" | "prompts/list"
    )
}

/// A set of rules and a default: who may call which tool, read which
/// resource, get which prompt, use which method.
///
/// How a request is decided (the order of the rules does not matter):
///
/// 1. `initialize`, `ping`, `server/discover` and notifications are always
///    allowed: they are the protocol's plumbing.
/// 2. A matching `deny` rule that applies to the caller (the caller holds
///    one of its roles, or it names `"*"`) → denied.
/// 3. A matching `allow` rule that applies to the caller → allowed.
/// 4. Otherwise the list methods (`tools/list`, `resources/list`,
///    `resources/templates/list`, `prompts/list`) are allowed (their answers
///    are filtered), and anything else gets the policy's default.
///
/// ```
/// use mcp_session::policy::{Policy, Rule};
/// use mcp_session::Roles;
///
/// let policy = Policy::default_deny()
///     .rule(Rule::allow(["*"]).tools(["whoami"]))
///     .rule(Rule::allow(["admin"]).named("admins").tools(["admin_*"]))
///     .build()
///     .unwrap();
/// let bob = Roles::new(["reader"]);
/// assert!(policy.decide("tools/call", Some("whoami"), &bob).is_allowed());
/// let denied = policy.decide("tools/call", Some("admin_echo"), &bob);
/// assert_eq!(
///     denied,
///     mcp_session::policy::Decision::Deny(policy.denial("tools/call", Some("admin_echo"), &bob))
/// );
/// # let mcp_session::policy::Decision::Deny(d) = denied else { panic!() };
/// assert_eq!(d.message(), "tool `admin_echo` requires role `admin`");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    default: Effect,
    rules: Arc<[Rule]>,
}

/// Builds a [`Policy`]: [`Policy::default_deny`] or [`Policy::default_allow`].
#[derive(Clone, Debug)]
pub struct PolicyBuilder {
    default: Effect,
    rules: Vec<PendingRule>,
}

impl PolicyBuilder {
    /// Adds a rule.
    pub fn rule(mut self, rule: PendingRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Checks every rule; the error names the first one at fault.
    pub fn build(self) -> Result<Policy, PolicyError> {
        let rules = self
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| {
                let name = rule.builder.name.as_deref().map(str::to_string);
                rule.build().map_err(|message| PolicyError::Rule {
                    position: i + 1,
                    name,
                    message,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Policy {
            default: self.default,
            rules: rules.into(),
        })
    }
}

/// A rule as written in a file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    name: Option<String>,
    effect: Effect,
    roles: Vec<String>,
    #[serde(default)]
    tools: Option<Vec<String>>,
    #[serde(default)]
    resources: Option<Vec<String>>,
    #[serde(default)]
    prompts: Option<Vec<String>>,
    #[serde(default)]
    methods: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    default: Effect,
    #[serde(default, alias = "rule")]
    rules: Vec<serde_json::Value>,
}

impl Policy {
    /// A policy that refuses what no rule allows (list methods aside, which
    /// are filtered instead). The usual choice.
    pub fn default_deny() -> PolicyBuilder {
        PolicyBuilder {
            default: Effect::Deny,
            rules: Vec::new(),
        }
    }

    /// A policy that allows what no rule denies.
    pub fn default_allow() -> PolicyBuilder {
        PolicyBuilder {
            default: Effect::Allow,
            rules: Vec::new(),
        }
    }

    /// The default effect.
    pub fn default_effect(&self) -> Effect {
        self.default
    }

    /// The rules, in the order given.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Loads a policy from TOML:
    ///
    /// ```
    /// let policy = mcp_session::policy::Policy::from_toml(r#"
    ///     default = "deny"
    ///
    ///     [[rules]]
    ///     name = "admin tools"
    ///     effect = "allow"
    ///     roles = ["admin"]
    ///     tools = ["admin_echo", "set_roles"]
    /// "#).unwrap();
    /// assert_eq!(policy.rules().len(), 1);
    ///
    /// let error = mcp_session::policy::Policy::from_toml(r#"
    ///     default = "deny"
    ///     [[rules]]
    ///     name = "typo"
    ///     effect = "allow"
    ///     roles = ["admin"]
    ///     tool = ["admin_echo"]
    /// "#).unwrap_err();
    /// assert!(error.to_string().starts_with("policy rule #1 (\"typo\"): unknown field `tool`"), "{error}");
    /// ```
    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        let file: PolicyFile =
            toml::from_str(text).map_err(|e| PolicyError::Document(e.message().to_string()))?;
        Self::from_file(file)
    }

    /// Loads a policy from JSON (the same shape as the TOML form:
    /// `{"default": "deny", "rules": [{"effect": "allow", "roles": […], "tools": […]}]}`).
    pub fn from_json(text: &str) -> Result<Policy, PolicyError> {
        let file: PolicyFile =
            serde_json::from_str(text).map_err(|e| PolicyError::Document(e.to_string()))?;
        Self::from_file(file)
    }

    fn from_file(file: PolicyFile) -> Result<Policy, PolicyError> {
        let mut builder = PolicyBuilder {
            default: file.default,
            rules: Vec::with_capacity(file.rules.len()),
        };
        for (i, value) in file.rules.into_iter().enumerate() {
            let name = value
                .get("name")
                .and_then(|n| n.as_str())
                .map(str::to_string);
            let fault = |message: String| PolicyError::Rule {
                position: i + 1,
                name: name.clone(),
                message,
            };
            let rule: RuleFile = serde_json::from_value(value).map_err(|e| fault(e.to_string()))?;
            let targets = [
                (Kind::Tool, rule.tools),
                (Kind::Resource, rule.resources),
                (Kind::Prompt, rule.prompts),
                (Kind::Method, rule.methods),
            ];
            let mut given = targets.into_iter().filter_map(|(k, p)| p.map(|p| (k, p)));
            let (kind, patterns) = given.next().ok_or_else(|| {
                fault("no target: give one of `tools`, `resources`, `prompts`, `methods`".into())
            })?;
            if given.next().is_some() {
                return Err(fault(
                    "more than one target: give only one of `tools`, `resources`, `prompts`, `methods` per rule".into(),
                ));
            }
            let mut b = RuleBuilder::new(rule.effect, rule.roles);
            b.name = rule.name.map(Into::into);
            builder.rules.push(b.target(kind, patterns));
        }
        builder.build()
    }

    /// Decides a request: its JSON-RPC `method` and, for `tools/call`,
    /// `prompts/get` and `resources/read` (`subscribe`, `unsubscribe`), the
    /// tool or prompt name or the resource URI. See the [type docs](Policy).
    pub fn decide(&self, method: &str, name: Option<&str>, roles: &Roles) -> Decision {
        if self.allows(method, name, roles) {
            Decision::Allow
        } else {
            Decision::Deny(self.denial(method, name, roles))
        }
    }

    /// Whether a request is allowed (the allocation-free half of
    /// [`decide`](Policy::decide)).
    pub fn allows(&self, method: &str, name: Option<&str>, roles: &Roles) -> bool {
        if is_exempt(method) {
            return true;
        }
        let mut allowed = false;
        for rule in self.rules.iter() {
            if rule.matches(method, name) && rule.applies_to(roles) {
                match rule.effect {
                    Effect::Deny => return false,
                    Effect::Allow => allowed = true,
                }
            }
        }
        allowed || is_list(method) || self.default == Effect::Allow
    }

    /// The message for a refused request: which role it needs, or which
    /// rule denied it.
    pub fn denial(&self, method: &str, name: Option<&str>, roles: &Roles) -> Denial {
        let what = match (Kind::of_method(method), name) {
            (Some(kind), Some(name)) => format!("{} `{name}`", kind.noun()),
            _ => format!("method `{method}`"),
        };
        if let Some((i, rule)) = self.rules.iter().enumerate().find(|(_, r)| {
            r.effect == Effect::Deny && r.matches(method, name) && r.applies_to(roles)
        }) {
            let message = match rule.roles() {
                Some(mut denied) => {
                    let role = denied.find(|r| roles.contains(r)).unwrap_or_default();
                    format!(
                        "{what} is denied to role `{role}` by policy rule {}",
                        rule.label(i)
                    )
                }
                None => format!("{what} is denied by policy rule {}", rule.label(i)),
            };
            return Denial { message };
        }
        let mut needed: Vec<&str> = Vec::new();
        for rule in self.rules.iter() {
            if rule.effect == Effect::Allow && rule.matches(method, name) {
                for role in rule.roles().into_iter().flatten() {
                    if !needed.contains(&role) {
                        needed.push(role);
                    }
                }
            }
        }
        let message = match needed.as_slice() {
            [] => format!("{what} is not allowed by the server's policy for any role"),
            [one] => format!("{what} requires role `{one}`"),
            many => {
                let list: Vec<String> = many.iter().map(|r| format!("`{r}`")).collect();
                format!("{what} requires one of the roles {}", list.join(", "))
            }
        };
        Denial { message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches() {
        let m = |p: &str, t: &str| Pattern::new(p).unwrap().matches(t);
        assert!(m("admin_*", "admin_echo"));
        assert!(m("*", ""));
        assert!(m("file:///public/*", "file:///public/a/b"));
        assert!(!m("file:///public/*", "file:///private/a"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(m("exact", "exact"));
        assert!(!m("exact", "exact2"));
        assert!(Pattern::new("").is_err());
    }

    #[test]
    fn deny_wins_and_messages_name_roles_and_rules() {
        let policy = Policy::default_allow()
            .rule(Rule::deny(["intern"]).named("no interns").tools(["*"]))
            .rule(Rule::allow(["admin", "ops"]).tools(["deploy"]))
            .build()
            .unwrap();
        let intern = Roles::new(["intern", "admin"]);
        let d = policy.decide("tools/call", Some("deploy"), &intern);
        assert_eq!(
            d,
            Decision::Deny(Denial {
                message: "tool `deploy` is denied to role `intern` by policy rule `no interns`"
                    .into()
            })
        );
        assert!(policy
            .decide("tools/call", Some("deploy"), &Roles::new(["ops"]))
            .is_allowed());
        // default allow
        assert!(policy
            .decide("prompts/get", Some("x"), &Roles::default())
            .is_allowed());
        let deny = Policy::default_deny()
            .rule(Rule::allow(["admin", "ops"]).tools(["deploy"]))
            .build()
            .unwrap();
        let Decision::Deny(d) = deny.decide("tools/call", Some("deploy"), &Roles::default()) else {
            panic!()
        };
        assert_eq!(
            d.message(),
            "tool `deploy` requires one of the roles `admin`, `ops`"
        );
        let Decision::Deny(d) = deny.decide("logging/setLevel", None, &Roles::default()) else {
            panic!()
        };
        assert_eq!(
            d.message(),
            "method `logging/setLevel` is not allowed by the server's policy for any role"
        );
        assert!(deny
            .decide("tools/list", None, &Roles::default())
            .is_allowed());
        assert!(deny
            .decide("initialize", None, &Roles::default())
            .is_allowed());
    }

    #[test]
    fn loading_errors_name_the_rule() {
        let err = |text: &str| Policy::from_toml(text).unwrap_err().to_string();
        assert!(err("rules = []").contains("missing field `default`"));
        assert!(err("default = \"maybe\"").contains("unknown variant"));
        let e =
            err("default = \"deny\"\n[[rules]]\neffect = \"allow\"\nroles = []\ntools = [\"x\"]");
        assert_eq!(
            e,
            "policy rule #1: `roles` is empty: name at least one role, or \"*\" for every caller"
        );
        let e = err(
            "default = \"deny\"\n[[rules]]\nname = \"ok\"\neffect = \"allow\"\nroles = [\"a\"]\ntools = [\"x\"]\n\
             [[rules]]\nname = \"two\"\neffect = \"allow\"\nroles = [\"a\"]\ntools = [\"x\"]\nprompts = [\"y\"]",
        );
        assert!(
            e.starts_with("policy rule #2 (\"two\"): more than one target"),
            "{e}"
        );
        let e = err(
            "default = \"deny\"\n[[rules]]\neffect = \"allow\"\nroles = [\"a\"]\ntools = [\"\"]",
        );
        assert_eq!(e, "policy rule #1: tool pattern \"\": empty pattern");
        let e = Policy::from_json(
            r#"{"default":"allow","rules":[{"effect":"block","roles":["a"],"tools":["x"]}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("policy rule #1: unknown variant `block`"),
            "{e}"
        );
        let ok = Policy::from_json(r#"{"default":"allow","rules":[{"effect":"deny","roles":["*"],"methods":["logging/*"]}]}"#)
            .unwrap();
        assert!(!ok.allows("logging/setLevel", None, &Roles::default()));
    }
}
