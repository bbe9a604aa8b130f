//! The operations of the internal API: one fixed table, each row a name, the permission it
//! needs (none: any signed-in operator), whether a second operator must approve it, and
//! whether it needs a session at all (signing in does not). [`BackOffice::run`] checks the
//! row, runs the operation and writes the audit entry, denial or not.

use std::net::IpAddr;

use coss_core::{Command, FeeTier, MarketStatus};
use coss_store::{NewAuditRecord, NewOperator, RequestStatus};
use coss_types::{AccountId, Amount, MarketId, UserId};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::roles::{Permission as P, Role};
use crate::{AdminError, BackOffice, Operator, SETUP_TTL_MS, parse_networks, token_hash};

/// One operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    /// Its name (the internal API's path segment).
    pub name: &'static str,
    /// What it needs (`None`: any signed-in operator, or nobody for sign-in operations).
    pub permission: Option<P>,
    /// A change a second operator must approve.
    pub four_eyes: bool,
    /// Whether it needs an operator session.
    pub session: bool,
}

const fn op(name: &'static str, permission: Option<P>, four_eyes: bool) -> Operation {
    Operation {
        name,
        permission,
        four_eyes,
        session: true,
    }
}

const fn sign_in(name: &'static str) -> Operation {
    Operation {
        name,
        permission: None,
        four_eyes: false,
        session: false,
    }
}

/// Every operation of the internal API.
pub const OPERATIONS: &[Operation] = &[
    sign_in("auth.login"),
    sign_in("auth.setup"),
    sign_in("auth.activate"),
    op("auth.logout", None, false),
    op("me", None, false),
    op("users.search", Some(P::UsersRead), false),
    op("users.view", Some(P::UsersRead), false),
    op("users.lock", Some(P::UsersLock), false),
    op("users.unlock", Some(P::UsersLock), false),
    op("users.set_level", Some(P::UsersLevel), false),
    op("users.reset_2fa", Some(P::UsersResetTwoFactor), true),
    op("withdrawals.list", Some(P::WithdrawalsReview), false),
    op("withdrawals.approve", Some(P::WithdrawalsReview), false),
    op("withdrawals.reject", Some(P::WithdrawalsReview), false),
    op("withdrawals.halt", Some(P::WithdrawalsHalt), false),
    op("withdrawals.resume", Some(P::WithdrawalsHalt), false),
    op("money.overview", Some(P::MoneyRead), false),
    op("money.revenue", Some(P::MoneyRead), false),
    op("money.dao_weeks", Some(P::MoneyRead), false),
    op("money.export", Some(P::MoneyRead), false),
    op("markets.list", Some(P::MarketsRead), false),
    op("markets.set_status", Some(P::MarketsHalt), false),
    op("markets.list_market", Some(P::Listings), true),
    op("fees.set_schedule", Some(P::Fees), true),
    op("fees.set_account_tier", Some(P::Fees), true),
    op("fees.set_withdrawal_fee", Some(P::Fees), true),
    op("fees.set_gateway_fee", Some(P::Fees), true),
    op("fees.set_withdrawal_minimum", Some(P::Fees), true),
    op("requests.list", None, false),
    op("requests.approve", None, false),
    op("requests.reject", None, false),
    op("requests.cancel", None, false),
    op("audit.list", Some(P::AuditRead), false),
    op("audit.verify", Some(P::AuditRead), false),
    op("audit.export", Some(P::AuditRead), false),
    op("operators.list", Some(P::OperatorsManage), false),
    op("operators.invite", Some(P::OperatorsManage), false),
    op("operators.update", Some(P::OperatorsManage), false),
];

/// The operation called `name`.
#[must_use]
pub fn operation(name: &str) -> Option<&'static Operation> {
    OPERATIONS.iter().find(|o| o.name == name)
}

/// Who called, as the signed call says.
#[derive(Debug, Clone)]
pub struct Call {
    /// The operator's session token, if the call carries one.
    pub token: Option<String>,
    /// The operator's address (as the operator program saw it).
    pub client_ip: IpAddr,
}

/// What an operation answers: its JSON, and what the audit log records of it.
struct Done {
    answer: Value,
    target: String,
    detail: Value,
}

fn done(answer: Value, target: impl Into<String>) -> Result<Done, AdminError> {
    Ok(Done {
        answer,
        target: target.into(),
        detail: Value::Null,
    })
}

fn params<T: DeserializeOwned>(value: &Value) -> Result<T, AdminError> {
    serde_json::from_value(value.clone())
        .map_err(|e| AdminError::invalid("invalid_params", format!("parameters: {e}")))
}

/// Parameters the audit log never records.
const SECRET_FIELDS: &[&str] = &["password", "code", "token"];

fn redacted(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    if SECRET_FIELDS.contains(&k.as_str()) {
                        (k.clone(), Value::String("[redacted]".into()))
                    } else {
                        (k.clone(), v.clone())
                    }
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `a***@example.com`.
pub(crate) fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

impl BackOffice {
    /// Runs operation `name` for a verified call: checks the session, the network and the
    /// permission, runs it, and audits the outcome (a denial included). Four-eyes operations
    /// are validated and recorded as requests; a second operator's approval carries them out.
    pub async fn run(&self, name: &str, call: &Call, input: &Value) -> Result<Value, AdminError> {
        let now = self.now();
        let Some(operation) = operation(name) else {
            self.audit_outcome(
                None,
                name,
                "-",
                Err(&AdminError::UnknownOperation),
                input,
                call,
                now,
            )
            .await?;
            return Err(AdminError::UnknownOperation);
        };
        let operator = if operation.session {
            match &call.token {
                Some(token) => match self.session(token, call.client_ip).await {
                    Ok(operator) => Some(operator),
                    Err(error) => {
                        self.audit_outcome(None, name, "-", Err(&error), input, call, now)
                            .await?;
                        return Err(error);
                    }
                },
                None => {
                    let error = AdminError::Unauthenticated;
                    self.audit_outcome(None, name, "-", Err(&error), input, call, now)
                        .await?;
                    return Err(error);
                }
            }
        } else {
            None
        };
        if let (Some(operator), Some(permission)) = (&operator, operation.permission)
            && !operator.role.grants(permission)
        {
            let error = AdminError::Forbidden(permission.as_str());
            self.audit_outcome(Some(operator), name, "-", Err(&error), input, call, now)
                .await?;
            return Err(error);
        }
        let result = match (&operator, operation.four_eyes) {
            (Some(operator), true) => self.submit(operator, operation, input).await,
            _ => self.dispatch(operator.as_ref(), name, call, input).await,
        };
        // Who the entry names: the session's operator, or whom a sign-in signed in.
        let signed_in = match (&result, &operator) {
            (Ok((Some(who), _)), _) => Some(who.clone()),
            (_, Some(op)) => Some(op.clone()),
            _ => None,
        };
        match result {
            Ok((_, done)) => {
                let mut detail = redacted(input);
                if !done.detail.is_null()
                    && let Value::Object(map) = &mut detail
                {
                    map.insert("result".into(), done.detail.clone());
                }
                let status = if operation.four_eyes {
                    "submitted"
                } else {
                    "ok"
                };
                self.audit(NewAuditRecord {
                    at: now,
                    operator_id: signed_in.as_ref().map(|o| o.record.id),
                    operator_email: signed_in
                        .as_ref()
                        .map_or_else(|| "-".into(), |o| o.record.email.clone()),
                    operation: name.into(),
                    target: done.target,
                    outcome: status.into(),
                    detail: detail.to_string(),
                    client_ip: call.client_ip.to_string(),
                })
                .await?;
                Ok(done.answer)
            }
            Err(error) => {
                self.audit_outcome(signed_in.as_ref(), name, "-", Err(&error), input, call, now)
                    .await?;
                Err(error)
            }
        }
    }

    /// Audits a refusal or failure.
    #[allow(clippy::too_many_arguments)]
    async fn audit_outcome(
        &self,
        operator: Option<&Operator>,
        name: &str,
        target: &str,
        outcome: Result<(), &AdminError>,
        input: &Value,
        call: &Call,
        now: i64,
    ) -> Result<(), AdminError> {
        let (status, detail) = match outcome {
            Ok(()) => ("ok", redacted(input)),
            Err(error) => (
                if error.is_denial() {
                    "denied"
                } else {
                    "failed"
                },
                json!({ "params": redacted(input), "code": error.code() }),
            ),
        };
        let email = match operator {
            Some(o) => o.record.email.clone(),
            // A sign-in names who it claims to be.
            None => input
                .get("email")
                .and_then(Value::as_str)
                .map_or_else(|| "-".into(), |e| e.chars().take(254).collect()),
        };
        self.audit(NewAuditRecord {
            at: now,
            operator_id: operator.map(|o| o.record.id),
            operator_email: email,
            operation: name.chars().take(64).collect(),
            target: target.into(),
            outcome: status.into(),
            detail: detail.to_string(),
            client_ip: call.client_ip.to_string(),
        })
        .await
    }

    /// Audits a signed call that never reached an operation (bad signature, replay, …).
    pub async fn audit_refused_call(
        &self,
        path: &str,
        client_ip: &str,
        error: &AdminError,
    ) -> Result<(), AdminError> {
        self.audit(NewAuditRecord {
            at: self.now(),
            operator_id: None,
            operator_email: "-".into(),
            operation: path.chars().take(96).collect(),
            target: "-".into(),
            outcome: "denied".into(),
            detail: json!({ "code": error.code() }).to_string(),
            client_ip: client_ip.chars().take(64).collect(),
        })
        .await
    }

    async fn dispatch(
        &self,
        operator: Option<&Operator>,
        name: &str,
        call: &Call,
        input: &Value,
    ) -> Result<(Option<Operator>, Done), AdminError> {
        let Some(operator) = operator else {
            return self.sign_in_operation(name, call, input).await;
        };
        let done = match name {
            "auth.logout" => {
                self.store()
                    .end_operator_session(operator.session_id, self.now())
                    .await?;
                done(json!({ "signed_out": true }), "-")
            }
            "me" => done(operator_view(operator), "-"),
            "users.search" => self.users_search(operator, input).await,
            "users.view" => self.users_view(operator, input).await,
            "users.lock" => self.users_lock(input, true).await,
            "users.unlock" => self.users_lock(input, false).await,
            "users.set_level" => self.users_set_level(input).await,
            "withdrawals.list" => self.withdrawals_list().await,
            "withdrawals.approve" => self.withdrawals_approve(operator, input).await,
            "withdrawals.reject" => self.withdrawals_reject(input).await,
            "withdrawals.halt" => self.withdrawals_halt(operator, input, true).await,
            "withdrawals.resume" => self.withdrawals_halt(operator, input, false).await,
            "money.overview" => self
                .money_overview()
                .await
                .and_then(|rows| done(json!({ "assets": rows }), "-")),
            "money.revenue" => done(json!({ "weeks": self.money_revenue() }), "-"),
            "money.dao_weeks" => self.money_dao_weeks().await,
            "money.export" => self.money_export(input).await,
            "markets.list" => self.markets_list().await,
            "markets.set_status" => self.markets_set_status(input).await,
            "requests.list" => self.requests_list(input).await,
            "requests.approve" => self.requests_decide(operator, input, true).await,
            "requests.reject" => self.requests_decide(operator, input, false).await,
            "requests.cancel" => self.requests_cancel(operator, input).await,
            "audit.list" => self.audit_list(input).await,
            "audit.export" => self.audit_export(input).await,
            "audit.verify" => {
                let verdict = crate::audit::verify(self.store(), None).await?;
                done(serde_json::to_value(&verdict).unwrap_or_default(), "-")
            }
            "operators.list" => self.operators_list().await,
            "operators.invite" => self.operators_invite(operator, input).await,
            "operators.update" => self.operators_update(operator, input).await,
            _ => Err(AdminError::UnknownOperation),
        }?;
        Ok((None, done))
    }

    async fn sign_in_operation(
        &self,
        name: &str,
        call: &Call,
        input: &Value,
    ) -> Result<(Option<Operator>, Done), AdminError> {
        match name {
            "auth.login" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Login {
                    email: String,
                    password: String,
                    code: String,
                }
                let p: Login = params(input)?;
                let (operator, token) = self
                    .login(&p.email, &p.password, &p.code, call.client_ip)
                    .await?;
                let mut answer = operator_view(&operator);
                answer["session_token"] = Value::String(token.to_string());
                let target = format!("operator:{}", operator.record.id);
                Ok((Some(operator), done(answer, target)?))
            }
            "auth.setup" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Setup {
                    token: String,
                }
                let p: Setup = params(input)?;
                let enrolment = self.setup_begin(&p.token).await?;
                Ok((
                    None,
                    done(
                        json!({
                            "secret": enrolment.secret.expose(),
                            "otpauth_uri": enrolment.otpauth_uri.expose(),
                            "qr_svg": enrolment.qr_svg,
                        }),
                        "-",
                    )?,
                ))
            }
            "auth.activate" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Activate {
                    token: String,
                    password: String,
                    code: String,
                }
                let p: Activate = params(input)?;
                let record = self.setup_complete(&p.token, &p.password, &p.code).await?;
                Ok((
                    None,
                    done(
                        json!({ "activated": true, "email": record.email }),
                        format!("operator:{}", record.id),
                    )?,
                ))
            }
            _ => Err(AdminError::Unauthenticated),
        }
    }

    // ----- Users -----

    async fn users_search(&self, operator: &Operator, input: &Value) -> Result<Done, AdminError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Search {
            query: String,
            #[serde(default)]
            unmask: bool,
        }
        let p: Search = params(input)?;
        if p.query.trim().is_empty() || p.query.len() > 254 {
            return Err(AdminError::invalid(
                "invalid_query",
                "search by 1 to 254 characters of an email, or an account id",
            ));
        }
        let unmask = self.may_unmask(operator, p.unmask)?;
        let users = self.store().search_users(&p.query, 50).await?;
        let rows: Vec<Value> = users
            .iter()
            .map(|u| {
                json!({
                    "id": u.id.0,
                    "email": if unmask { u.email.clone() } else { mask_email(&u.email) },
                    "verified": u.email_verified_at.is_some(),
                    "created_at": u.created_at,
                    "locked": u.locked_at > 0,
                    "verification_level": u.verification_level,
                })
            })
            .collect();
        let mut result = done(json!({ "users": rows, "unmasked": unmask }), "-")?;
        result.detail = json!({ "found": rows.len(), "unmasked": unmask });
        Ok(result)
    }

    fn may_unmask(&self, operator: &Operator, asked: bool) -> Result<bool, AdminError> {
        if asked && !operator.role.grants(P::UsersUnmask) {
            return Err(AdminError::Forbidden(P::UsersUnmask.as_str()));
        }
        Ok(asked)
    }

    async fn users_view(&self, operator: &Operator, input: &Value) -> Result<Done, AdminError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct View {
            user_id: i64,
            #[serde(default)]
            unmask: bool,
        }
        let p: View = params(input)?;
        let unmask = self.may_unmask(operator, p.unmask)?;
        let user_id = UserId(p.user_id);
        let user = self
            .store()
            .user(user_id)
            .await?
            .ok_or(AdminError::NotFound("user"))?;
        let account = account_of(user_id)?;
        let profile = self.store().profile(user_id).await?;
        let two_factor = self.accounts().two_factor_enabled(user_id).await?;
        let locked_in_core = self
            .engine()
            .read_async(move |e| e.account_locked(account))
            .await?;
        let (balances, open_orders, orders, trades) = {
            let projection = self.market().read();
            let balances: Vec<Value> = projection
                .balances(account)
                .into_iter()
                .filter_map(|(asset, available, locked)| {
                    let info = projection.asset(asset)?;
                    Some(json!({
                        "asset": info.symbol,
                        "available": Amount(available).to_decimal_string(info.decimals),
                        "locked": Amount(locked).to_decimal_string(info.decimals),
                    }))
                })
                .collect();
            let orders: Vec<Value> = projection
                .open_orders(account)
                .take(100)
                .map(|o| {
                    let market = projection.market(o.new.market);
                    json!({
                        "id": o.id.0,
                        "market": market.map(|m| m.market.symbol.clone()),
                        "side": format!("{:?}", o.new.side).to_uppercase(),
                        "price_ticks": o.price.map(|p| p.0),
                        "qty_lots": o.qty.map(|q| q.0),
                        "executed_lots": o.executed,
                        "time_ms": o.time_ms,
                    })
                })
                .collect();
            let recent: Vec<&coss_market::Order> = projection.orders_of(account).collect();
            let recent: Vec<Value> = recent
                .iter()
                .rev()
                .take(50)
                .map(|o| {
                    json!({
                        "id": o.id.0,
                        "market": projection.market(o.new.market).map(|m| m.market.symbol.clone()),
                        "side": format!("{:?}", o.new.side).to_uppercase(),
                        "status": format!("{:?}", o.status),
                        "executed_lots": o.executed,
                        "time_ms": o.time_ms,
                    })
                })
                .collect();
            let trades: Vec<&coss_market::Trade> = projection.trades_of(account).collect();
            let trades: Vec<Value> = trades
                .iter()
                .rev()
                .take(50)
                .map(|t| {
                    json!({
                        "id": t.id,
                        "market": projection.market(t.market).map(|m| m.market.symbol.clone()),
                        "price_ticks": t.price.0,
                        "qty_lots": t.qty.0,
                        "maker": t.maker_account == account,
                        "time_ms": t.time_ms,
                    })
                })
                .collect();
            (balances, orders, recent, trades)
        };
        let sessions: Vec<Value> = self
            .accounts()
            .sessions(user_id)
            .await?
            .into_iter()
            .map(|(id, kind, device, created_at)| {
                json!({ "id": id, "kind": kind, "device": device, "created_at": created_at })
            })
            .collect();
        let deposits: Vec<Value> = self
            .store()
            .deposits_of(user_id, 20)
            .await?
            .into_iter()
            .map(|d| {
                json!({
                    "asset": d.asset, "amount_units": d.amount.to_string(),
                    "tx_hash": d.tx_hash, "status": d.status.as_str(), "created_at": d.created_at,
                })
            })
            .collect();
        let withdrawals: Vec<Value> = self
            .store()
            .withdrawals_of(user_id, 20)
            .await?
            .into_iter()
            .map(|w| {
                json!({
                    "id": w.id, "asset": w.asset, "amount_units": w.amount.to_string(),
                    "to_address": w.to_address, "status": w.status.as_str(),
                    "tx_hash": w.tx_hash, "created_at": w.created_at,
                })
            })
            .collect();
        let mask = |text: Option<String>| text.map(|t| if unmask { t } else { "***".into() });
        let answer = json!({
            "id": user.id.0,
            "email": if unmask { user.email.clone() } else { mask_email(&user.email) },
            "unmasked": unmask,
            "verified": user.email_verified_at.is_some(),
            "created_at": user.created_at,
            "locked": user.locked_at > 0,
            "locked_at": user.locked_at,
            "locked_in_core": locked_in_core,
            "verification_level": profile.verification_level,
            "display_name": mask(profile.display_name),
            "country": profile.country,
            "two_factor": two_factor,
            "balances": balances,
            "open_orders": open_orders,
            "orders": orders,
            "trades": trades,
            "sessions": sessions,
            "deposits": deposits,
            "withdrawals": withdrawals,
        });
        let mut result = done(answer, format!("user:{}", user.id.0))?;
        result.detail = json!({ "unmasked": unmask });
        Ok(result)
    }

    async fn users_lock(&self, input: &Value, locked: bool) -> Result<Done, AdminError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Lock {
            user_id: i64,
            reason: String,
        }
        let p: Lock = params(input)?;
        checked_reason(&p.reason)?;
        let user_id = UserId(p.user_id);
        self.store()
            .user(user_id)
            .await?
            .ok_or(AdminError::NotFound("user"))?;
        let account = account_of(user_id)?;
        let now = self.now();
        // The core first, then the sign-ins: a lock stops the money before anything else, an
        // unlock opens the sign-ins last. A retry finishes whichever half a failure left.
        let cancelled = self
            .core(Command::SetAccountLock { account, locked })
            .await?
            .iter()
            .filter(|e| matches!(e.kind, coss_core::EventKind::OrderDone { .. }))
            .count();
        self.accounts().set_locked(user_id, locked, now).await?;
        let mut result = done(
            json!({ "user_id": user_id.0, "locked": locked, "orders_cancelled": cancelled }),
            format!("user:{}", user_id.0),
        )?;
        result.detail = json!({ "orders_cancelled": cancelled });
        Ok(result)
    }

    async fn users_set_level(&self, input: &Value) -> Result<Done, AdminError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Level {
            user_id: i64,
            level: i64,
        }
        let p: Level = params(input)?;
        if !(0..=3).contains(&p.level) {
            return Err(AdminError::invalid(
                "invalid_level",
                "verification levels are 0 to 3",
            ));
        }
        let user_id = UserId(p.user_id);
        self.store()
            .user(user_id)
            .await?
            .ok_or(AdminError::NotFound("user"))?;
        let before = self.store().profile(user_id).await?.verification_level;
        self.store()
            .set_verification_level(user_id, p.level, self.now())
            .await?;
        let mut result = done(
            json!({ "user_id": user_id.0, "verification_level": p.level }),
            format!("user:{}", user_id.0),
        )?;
        result.detail = json!({ "before": before });
        Ok(result)
    }

    /// Runs a core command; a rejection is an error with the core's reason.
    async fn core(&self, command: Command) -> Result<Vec<coss_core::Event>, AdminError> {
        let receipt = self.engine().submit_async(command).await?;
        receipt.outcome.map_err(AdminError::Rejected)?;
        if let Some(last) = receipt.events.last() {
            self.market().caught_up(last.seq).await;
        }
        Ok(receipt.events)
    }

    // ----- Withdrawals -----

    async fn withdrawals_list(&self) -> Result<Done, AdminError> {
        let mut rows = Vec::new();
        for w in self.store().withdrawals_in_review().await? {
            let approvals = self.store().withdrawal_approvals(w.id).await?;
            rows.push(json!({
                "id": w.id,
                "user_id": w.user_id.0,
                "asset": w.asset,
                "amount_units": w.amount.to_string(),
                "amount": self.decimal(&w.asset, w.amount),
                "to_address": w.to_address,
                "reason": w.review_reason,
                "approved_by": approvals,
                "created_at": w.created_at,
            }));
        }
        let halts: Vec<Value> = self
            .store()
            .withdrawal_halts()
            .await?
            .into_iter()
            .map(|h| json!({ "asset": h.asset, "halted_by": h.halted_by, "reason": h.reason, "halted_at": h.halted_at }))
            .collect();
        done(json!({ "review": rows, "halts": halts }), "-")
    }

    fn decimal(&self, symbol: &str, amount: Amount) -> Option<String> {
        self.asset(symbol)
            .ok()
            .map(|a| amount.to_decimal_string(a.decimals))
    }

    /// A listed asset by its symbol (any case, spaces around ignored).
    fn asset(&self, symbol: &str) -> Result<coss_market::Asset, AdminError> {
        let symbol = symbol.trim().to_uppercase();
        self.market()
            .read()
            .assets()
            .find(|a| a.symbol == symbol)
            .cloned()
            .ok_or(AdminError::NotFound("asset"))
    }

    async fn withdrawals_approve(
        &self,
        operator: &Operator,
        input: &Value,
    ) -> Result<Done, AdminError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Approve {
            id: i64,
        }
        let p: Approve = params(input)?;
        let record = self
            .store()
            .withdrawal(p.id)
            .await?
            .ok_or(AdminError::NotFound("withdrawal"))?;
        if record.status != coss_store::WithdrawalStatus::Review {
            return Err(AdminError::NotPending);
        }
        // Four eyes: the first approval submits it, a different operator's releases it.
        let approvals = match self
            .store()
            .approve_withdrawal(record.id, operator.record.id, self.now())
            .await
        {
            Err(coss_store::StoreError::Conflict) => return Err(AdminError::SameOperator),
            other => other?,
        };
        let target = format!("withdrawal:{}", record.id);
        if approvals.len() < 2 {
            let mut result = done(
                json!({ "id": record.id, "status": "review", "approved_by": approvals }),
                target,
            )?;
            result.detail = json!({ "approvals": approvals.len() });
            return Ok(result);
        }
        if !self
            .store()
            .set_withdrawal_status(
                record.id,
                &[coss_store::WithdrawalStatus::Review],
                coss_store::WithdrawalStatus::Held,
                None,
                None,
                self.now(),
            )
            .await?
        {
            return Err(AdminError::NotPending);
        }
        let mut result = done(
            json!({ "id": record.id, "status": "held", "approved_by": approvals }),
            target,
        )?;
        result.detail = json!({ "approvals": approvals.len(), "released_for_signing": true });
        Ok(result)
    }

    async fn withdrawals_reject(&self, input: &Value) -> Result<Done, AdminError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Reject {
            id: i64,
            reason: String,
        }
        let p: Reject = params(input)?;
        let reason = checked_reason(&p.reason)?;
        self.store()
            .withdrawal(p.id)
            .await?
            .ok_or(AdminError::NotFound("withdrawal"))?;
        // The wallet's sender releases the hold in the core from `cancelling`.
        if !self
            .store()
            .set_withdrawal_status(
                p.id,
                &[coss_store::WithdrawalStatus::Review],
                coss_store::WithdrawalStatus::Cancelling,
                Some(&format!("rejected by the operators: {reason}")),
                None,
                self.now(),
            )
            .await?
        {
            return Err(AdminError::NotPending);
        }
        done(
            json!({ "id": p.id, "status": "cancelling" }),
            format!("withdrawal:{}", p.id),
        )
    }

    async fn withdrawals_halt(
        &self,
        operator: &Operator,
        input: &Value,
        halt: bool,
    ) -> Result<Done, AdminError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Halt {
            asset: String,
            #[serde(default)]
            reason: Option<String>,
        }
        let p: Halt = params(input)?;
        let asset = match p.asset.trim() {
            "*" => "*".to_owned(),
            symbol => self.asset(symbol)?.symbol,
        };
        let given = p.reason.unwrap_or_default();
        let reason = if halt {
            checked_reason(&given)?
        } else {
            given.trim()
        };
        self.store()
            .set_withdrawal_halt(
                &asset,
                halt.then_some((operator.record.id, reason)),
                self.now(),
            )
            .await?;
        done(
            json!({ "asset": asset, "halted": halt }),
            format!("withdrawals:{asset}"),
        )
    }

    // ----- Money -----

    /// Per asset: what the exchange core owes and holds by account kind, against what the
    /// platform holds on chain (hot, cold, unswept deposit addresses); a shortfall when the
    /// chain holds less than the liabilities.
    async fn money_overview(&self) -> Result<Vec<Value>, AdminError> {
        use coss_core::{DAO_PAYOUTS, FEES_HOLDERS, FEES_PLATFORM, GATEWAY, WITHDRAWAL_FEES};
        let ledger = self
            .engine()
            .read_async(|e| {
                (0..coss_core::MAX_ASSETS)
                    .filter_map(|id| {
                        let asset = coss_types::AssetId(id);
                        let info = e.asset_info(asset)?;
                        let held = |account| {
                            let b = e.balance(account, asset);
                            b.available.0.saturating_add(b.locked.0)
                        };
                        Some((
                            asset,
                            info,
                            [
                                held(FEES_PLATFORM),
                                held(WITHDRAWAL_FEES),
                                held(FEES_HOLDERS).saturating_add(held(DAO_PAYOUTS)),
                                held(GATEWAY),
                            ],
                        ))
                    })
                    .collect::<Vec<_>>()
            })
            .await?;
        let reserves = match self.wallet() {
            Some(wallet) => wallet.reserves().await.map_err(|e| {
                AdminError::invalid(
                    "chain_unavailable",
                    format!("the chain could not be read: {e}"),
                )
            })?,
            None => Vec::new(),
        };
        let mut rows = Vec::new();
        for (asset, info, [platform, withdrawal_fees, holders, gateway]) in ledger {
            let decimal = |units: u128| Amount(units).to_decimal_string(info.decimals);
            let supply = info.deposited.0.saturating_sub(info.withdrawn.0);
            let users = supply
                .saturating_sub(platform)
                .saturating_sub(withdrawal_fees)
                .saturating_sub(holders)
                .saturating_sub(gateway);
            // What the platform owes: everything but its own fee revenue.
            let liabilities = supply
                .saturating_sub(platform)
                .saturating_sub(withdrawal_fees);
            let reserve = reserves.iter().find(|r| r.asset == asset);
            let (on_chain, shortfall) = match reserve {
                Some(r) => {
                    let total = r
                        .hot
                        .saturating_add(r.cold.unwrap_or(0))
                        .saturating_add(r.deposit_addresses);
                    (Some(total), liabilities.saturating_sub(total))
                }
                None => (None, 0),
            };
            rows.push(json!({
                "asset": info.symbol,
                "in_accounts": decimal(supply),
                "users": decimal(users),
                "holders_owed": decimal(holders),
                "gateway": decimal(gateway),
                "platform_fees": decimal(platform),
                "withdrawal_fees": decimal(withdrawal_fees),
                "liabilities": decimal(liabilities),
                "hot": reserve.map(|r| decimal(r.hot)),
                "cold": reserve.and_then(|r| r.cold.map(decimal)),
                "deposit_addresses": reserve.map(|r| decimal(r.deposit_addresses)),
                "on_chain": on_chain.map(decimal),
                "partial": reserve.is_some_and(|r| r.partial),
                "shortfall": (shortfall > 0).then(|| decimal(shortfall)),
            }));
        }
        Ok(rows)
    }

    /// Fee revenue by week (Monday 00:00 UTC) and asset, newest first.
    fn money_revenue(&self) -> Vec<Value> {
        let projection = self.market().read();
        let mut rows: Vec<Value> = projection
            .revenue()
            .filter_map(|(week, asset, r)| {
                let info = projection.asset(asset)?;
                let decimal = |units: u128| Amount(units).to_decimal_string(info.decimals);
                Some(json!({
                    "week_start": week,
                    "asset": info.symbol,
                    "platform": decimal(r.platform),
                    "holders": decimal(r.holders),
                    "withdrawal_fees": decimal(r.withdrawal),
                }))
            })
            .collect();
        rows.reverse();
        rows
    }

    async fn money_dao_weeks(&self) -> Result<Done, AdminError> {
        let mut rows = Vec::new();
        for week in self.store().dao_weeks(52).await? {
            let pools: Vec<Value> = self
                .store()
                .dao_week_assets(week.close_ms)
                .await?
                .into_iter()
                .map(|a| {
                    let id = coss_types::AssetId(u32::try_from(a.asset).unwrap_or(u32::MAX));
                    let asset = self.market().read().asset(id).cloned();
                    json!({
                        "asset": asset.as_ref().map(|x| x.symbol.clone()),
                        "pool": asset.map_or_else(|| a.pool.to_string(), |x| a.pool.to_decimal_string(x.decimals)),
                    })
                })
                .collect();
            rows.push(json!({
                "week": week.week,
                "close_ms": week.close_ms,
                "holders": week.holders,
                "root": week.root,
                "paid_at": week.paid_at,
                "pools": pools,
            }));
        }
        done(json!({ "weeks": rows }), "-")
    }

    async fn money_export(&self, input: &Value) -> Result<Done, AdminError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Export {
            what: String,
        }
        let p: Export = params(input)?;
        let (rows, columns): (Vec<Value>, &[&str]) = match p.what.as_str() {
            "overview" => (
                self.money_overview().await?,
                &[
                    "asset",
                    "in_accounts",
                    "users",
                    "holders_owed",
                    "gateway",
                    "platform_fees",
                    "withdrawal_fees",
                    "liabilities",
                    "hot",
                    "cold",
                    "deposit_addresses",
                    "on_chain",
                    "shortfall",
                    "partial",
                ],
            ),
            "revenue" => (
                self.money_revenue(),
                &[
                    "week_start",
                    "asset",
                    "platform",
                    "holders",
                    "withdrawal_fees",
                ],
            ),
            _ => {
                return Err(AdminError::invalid(
                    "invalid_export",
                    "export `overview` or `revenue`",
                ));
            }
        };
        let mut csv = columns.join(",");
        csv.push_str("\r\n");
        for row in &rows {
            let cells: Vec<String> = columns
                .iter()
                .map(|c| match &row[*c] {
                    Value::String(s) => csv_cell(s),
                    Value::Null => String::new(),
                    other => csv_cell(&other.to_string()),
                })
                .collect();
            csv.push_str(&cells.join(","));
            csv.push_str("\r\n");
        }
        done(json!({ "csv": csv, "rows": rows.len() }), "-")
    }

    // ----- Markets and fees -----

    async fn markets_list(&self) -> Result<Done, AdminError> {
        let (schedule, gateway_fee, assets) = self
            .engine()
            .read_async(|e| {
                let assets: Vec<(u32, coss_core::AssetInfo)> = (0..coss_core::MAX_ASSETS)
                    .filter_map(|id| Some((id, e.asset_info(coss_types::AssetId(id))?)))
                    .collect();
                (e.fee_schedule().to_vec(), e.gateway_fee_ppm(), assets)
            })
            .await?;
        let projection = self.market().read();
        let markets: Vec<Value> = projection
            .markets()
            .map(|m| {
                let market = &m.market;
                json!({
                    "id": market.id.0,
                    "symbol": market.symbol,
                    "base": market.base.symbol,
                    "quote": market.quote.symbol,
                    "lot_size": Amount(market.lot_size).to_decimal_string(market.base.decimals),
                    "tick_size": Amount(market.tick_size).to_decimal_string(market.quote.decimals),
                    "min_notional": Amount(market.min_notional).to_decimal_string(market.quote.decimals),
                    "status": if market.trading {
                        "trading"
                    } else if market.hidden {
                        "hidden"
                    } else {
                        "halted"
                    },
                })
            })
            .collect();
        let assets: Vec<Value> = assets
            .iter()
            .map(|(id, a)| {
                json!({
                    "id": id,
                    "symbol": a.symbol,
                    "decimals": a.decimals,
                    "fees_shared": a.fees_shared,
                    "withdrawal_fee": a.withdrawal_fee.to_decimal_string(a.decimals),
                    "withdrawal_minimum": a.withdrawal_minimum.to_decimal_string(a.decimals),
                })
            })
            .collect();
        let tiers: Vec<Value> = schedule
            .iter()
            .map(|t| json!({ "maker_ppm": t.maker_ppm, "taker_ppm": t.taker_ppm }))
            .collect();
        done(
            json!({
                "markets": markets,
                "assets": assets,
                "fee_schedule": tiers,
                "gateway_fee_ppm": gateway_fee,
            }),
            "-",
        )
    }

    fn market_id(&self, symbol: &str) -> Result<MarketId, AdminError> {
        self.market()
            .read()
            .market_by_symbol(&symbol.trim().to_uppercase())
            .map(|m| m.market.id)
            .ok_or(AdminError::NotFound("market"))
    }

    async fn markets_set_status(&self, input: &Value) -> Result<Done, AdminError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct SetStatus {
            market: String,
            status: String,
        }
        let p: SetStatus = params(input)?;
        let status = match p.status.as_str() {
            "trading" => MarketStatus::Trading,
            "halted" => MarketStatus::Halted,
            "hidden" => MarketStatus::Hidden,
            _ => {
                return Err(AdminError::invalid(
                    "invalid_status",
                    "a market's status is trading, halted or hidden",
                ));
            }
        };
        let market = self.market_id(&p.market)?;
        self.core(Command::SetMarketStatus { market, status })
            .await?;
        done(
            json!({ "market": p.market.to_uppercase(), "status": p.status }),
            format!("market:{}", market.0),
        )
    }

    /// A four-eyes operation's change, from its parameters (checked at submission and again
    /// when approved), with its target and summary.
    fn change(&self, name: &str, input: &Value) -> Result<(Change, String, String), AdminError> {
        if name == "users.reset_2fa" {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Reset {
                user_id: i64,
                reason: String,
            }
            let p: Reset = params(input)?;
            let reason = checked_reason(&p.reason)?;
            account_of(UserId(p.user_id))?;
            return Ok((
                Change::ResetSecondFactor(UserId(p.user_id)),
                format!("user:{}", p.user_id),
                format!("reset the second factor of user {}: {reason}", p.user_id),
            ));
        }
        let (command, target, summary) = self.core_change(name, input)?;
        Ok((Change::Core(command), target, summary))
    }

    /// A four-eyes change made by a core command.
    fn core_change(
        &self,
        name: &str,
        input: &Value,
    ) -> Result<(Command, String, String), AdminError> {
        match name {
            "markets.list_market" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct List {
                    id: u32,
                    base: String,
                    quote: String,
                    lot_size: String,
                    tick_size: String,
                    min_notional: String,
                }
                let p: List = params(input)?;
                let (base, quote) = (self.asset(&p.base)?, self.asset(&p.quote)?);
                let amount = |text: &str, decimals: u8, what: &'static str| {
                    Amount::parse_decimal(text, decimals).map_err(|e| {
                        AdminError::invalid("invalid_amount", format!("{what} {text:?}: {e}"))
                    })
                };
                let command = Command::ListMarket {
                    market: MarketId(p.id),
                    base: base.id,
                    quote: quote.id,
                    lot_size: amount(&p.lot_size, base.decimals, "lot_size")?,
                    tick_size: amount(&p.tick_size, quote.decimals, "tick_size")?,
                    min_notional: amount(&p.min_notional, quote.decimals, "min_notional")?,
                };
                Ok((
                    command,
                    format!("market:{}", p.id),
                    format!(
                        "list {}{} (id {}): lot {}, tick {}, minimum {}",
                        base.symbol, quote.symbol, p.id, p.lot_size, p.tick_size, p.min_notional
                    ),
                ))
            }
            "fees.set_schedule" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Tier {
                    maker_ppm: u32,
                    taker_ppm: u32,
                }
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Schedule {
                    tiers: Vec<Tier>,
                }
                let p: Schedule = params(input)?;
                if p.tiers.is_empty()
                    || p.tiers.len() > 16
                    || p.tiers
                        .iter()
                        .any(|t| t.maker_ppm > 100_000 || t.taker_ppm > 100_000)
                {
                    return Err(AdminError::invalid(
                        "invalid_fee_schedule",
                        "a fee schedule has 1 to 16 tiers, each rate at most 100000 ppm (10%)",
                    ));
                }
                let summary = p
                    .tiers
                    .iter()
                    .map(|t| format!("{}/{}", t.maker_ppm, t.taker_ppm))
                    .collect::<Vec<_>>()
                    .join(", ");
                Ok((
                    Command::SetFeeSchedule {
                        tiers: p
                            .tiers
                            .iter()
                            .map(|t| FeeTier {
                                maker_ppm: t.maker_ppm,
                                taker_ppm: t.taker_ppm,
                            })
                            .collect(),
                    },
                    "fees".into(),
                    format!("fee schedule (maker/taker ppm per tier): {summary}"),
                ))
            }
            "fees.set_account_tier" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct AccountTier {
                    user_id: i64,
                    tier: u8,
                }
                let p: AccountTier = params(input)?;
                let account = account_of(UserId(p.user_id))?;
                Ok((
                    Command::SetAccountFeeTier {
                        account,
                        tier: p.tier,
                    },
                    format!("user:{}", p.user_id),
                    format!("fee tier {} for user {}", p.tier, p.user_id),
                ))
            }
            "fees.set_withdrawal_fee" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct WithdrawalFee {
                    asset: String,
                    fee: String,
                }
                let p: WithdrawalFee = params(input)?;
                let asset = self.asset(&p.asset)?;
                let fee = Amount::parse_decimal(&p.fee, asset.decimals).map_err(|e| {
                    AdminError::invalid("invalid_amount", format!("fee {:?}: {e}", p.fee))
                })?;
                Ok((
                    Command::SetWithdrawalFee {
                        asset: asset.id,
                        fee,
                    },
                    format!("asset:{}", asset.symbol),
                    format!("withdrawal fee of {} to {}", asset.symbol, p.fee),
                ))
            }
            "fees.set_withdrawal_minimum" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct WithdrawalMinimum {
                    asset: String,
                    minimum: String,
                }
                let p: WithdrawalMinimum = params(input)?;
                let asset = self.asset(&p.asset)?;
                let minimum = Amount::parse_decimal(&p.minimum, asset.decimals)
                    .ok()
                    .filter(|m| !m.is_zero())
                    .ok_or_else(|| {
                        AdminError::invalid(
                            "invalid_amount",
                            format!(
                                "minimum {:?}: a positive amount of {}",
                                p.minimum, asset.symbol
                            ),
                        )
                    })?;
                Ok((
                    Command::SetWithdrawalMinimum {
                        asset: asset.id,
                        minimum,
                    },
                    format!("asset:{}", asset.symbol),
                    format!("smallest withdrawal of {} to {}", asset.symbol, p.minimum),
                ))
            }
            "fees.set_gateway_fee" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct GatewayFee {
                    fee_ppm: u32,
                }
                let p: GatewayFee = params(input)?;
                if p.fee_ppm > 100_000 {
                    return Err(AdminError::invalid(
                        "invalid_fee",
                        "the gateway fee is at most 100000 ppm (10%)",
                    ));
                }
                Ok((
                    Command::SetGatewayFee { fee_ppm: p.fee_ppm },
                    "fees".into(),
                    format!("gateway fee to {} ppm", p.fee_ppm),
                ))
            }
            _ => Err(AdminError::UnknownOperation),
        }
    }

    async fn submit(
        &self,
        operator: &Operator,
        operation: &Operation,
        input: &Value,
    ) -> Result<(Option<Operator>, Done), AdminError> {
        let (_, target, summary) = self.change(operation.name, input)?;
        let request = self
            .store()
            .submit_admin_request(
                operation.name,
                &input.to_string(),
                &summary,
                operator.record.id,
                self.now(),
            )
            .await?;
        let mut result = done(
            json!({ "status": "pending", "request_id": request.id, "summary": summary }),
            target,
        )?;
        result.detail = json!({ "request_id": request.id });
        Ok((None, result))
    }

    async fn requests_list(&self, input: &Value) -> Result<Done, AdminError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct List {
            #[serde(default)]
            pending: bool,
        }
        let p: List = params(input)?;
        let requests = self.store().admin_requests(p.pending, 200).await?;
        let rows: Vec<Value> = requests
            .iter()
            .map(|r| {
                json!({
                    "id": r.id,
                    "operation": r.operation,
                    "summary": r.summary,
                    "params": serde_json::from_str::<Value>(&r.params).unwrap_or(Value::Null),
                    "submitted_by": r.submitted_by,
                    "submitted_at": r.submitted_at,
                    "status": r.status.as_str(),
                    "decided_by": r.decided_by,
                    "decided_at": r.decided_at,
                    "result": r.result,
                })
            })
            .collect();
        done(json!({ "requests": rows }), "-")
    }

    async fn requests_decide(
        &self,
        operator: &Operator,
        input: &Value,
        approve: bool,
    ) -> Result<Done, AdminError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Decide {
            id: i64,
            #[serde(default)]
            reason: Option<String>,
        }
        let p: Decide = params(input)?;
        let request = self
            .store()
            .admin_request(p.id)
            .await?
            .ok_or(AdminError::NotFound("request"))?;
        let operation = operation(&request.operation).ok_or(AdminError::UnknownOperation)?;
        if let Some(permission) = operation.permission
            && !operator.role.grants(permission)
        {
            return Err(AdminError::Forbidden(permission.as_str()));
        }
        // Four eyes: never the submitter, whatever session or role.
        if request.submitted_by == operator.record.id {
            return Err(AdminError::SameOperator);
        }
        if request.status != RequestStatus::Pending {
            return Err(AdminError::NotPending);
        }
        let now = self.now();
        let target = format!("request:{}", request.id);
        if !approve {
            let reason = p.reason.unwrap_or_default();
            self.store()
                .decide_admin_request(
                    request.id,
                    RequestStatus::Pending,
                    RequestStatus::Rejected,
                    operator.record.id,
                    Some(&json!({ "reason": reason }).to_string()),
                    now,
                )
                .await
                .map_err(not_pending)?;
            return done(json!({ "id": request.id, "status": "rejected" }), target);
        }
        let input: Value = serde_json::from_str(&request.params).unwrap_or(Value::Null);
        // The compare-and-set comes first: two approvers racing carry it out once.
        self.store()
            .decide_admin_request(
                request.id,
                RequestStatus::Pending,
                RequestStatus::Executed,
                operator.record.id,
                None,
                now,
            )
            .await
            .map_err(not_pending)?;
        let outcome = match self.change(&request.operation, &input) {
            Ok((Change::Core(command), _, _)) => self.core(command).await.map(|_| ()),
            Ok((Change::ResetSecondFactor(user), _, _)) => match self.store().user(user).await? {
                Some(_) => self
                    .accounts()
                    .reset_second_factor(user, self.now())
                    .await
                    .map_err(AdminError::from),
                None => Err(AdminError::NotFound("user")),
            },
            Err(error) => Err(error),
        };
        match outcome {
            Ok(()) => {
                let mut result = done(
                    json!({ "id": request.id, "status": "executed", "summary": request.summary }),
                    target,
                )?;
                result.detail =
                    json!({ "operation": request.operation, "submitted_by": request.submitted_by });
                Ok(result)
            }
            Err(error) => {
                self.store()
                    .decide_admin_request(
                        request.id,
                        RequestStatus::Executed,
                        RequestStatus::Failed,
                        operator.record.id,
                        Some(
                            &json!({ "code": error.code(), "message": error.to_string() })
                                .to_string(),
                        ),
                        now,
                    )
                    .await?;
                Err(error)
            }
        }
    }

    async fn requests_cancel(
        &self,
        operator: &Operator,
        input: &Value,
    ) -> Result<Done, AdminError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Cancel {
            id: i64,
        }
        let p: Cancel = params(input)?;
        let request = self
            .store()
            .admin_request(p.id)
            .await?
            .ok_or(AdminError::NotFound("request"))?;
        if request.submitted_by != operator.record.id {
            return Err(AdminError::Forbidden(
                "withdrawing another operator's request",
            ));
        }
        self.store()
            .decide_admin_request(
                request.id,
                RequestStatus::Pending,
                RequestStatus::Cancelled,
                operator.record.id,
                None,
                self.now(),
            )
            .await
            .map_err(not_pending)?;
        done(
            json!({ "id": request.id, "status": "cancelled" }),
            format!("request:{}", request.id),
        )
    }

    // ----- Audit -----

    async fn audit_list(&self, input: &Value) -> Result<Done, AdminError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct List {
            #[serde(default)]
            after: i64,
            #[serde(default = "default_limit")]
            limit: i64,
        }
        fn default_limit() -> i64 {
            100
        }
        let p: List = params(input)?;
        if !(1..=1_000).contains(&p.limit) {
            return Err(AdminError::invalid("invalid_limit", "limit is 1 to 1000"));
        }
        let entries = self.store().audit_entries(p.after.max(0), p.limit).await?;
        let rows: Vec<Value> = entries
            .iter()
            .map(|r| {
                json!({
                    "seq": r.seq,
                    "at": r.entry.at,
                    "operator_id": r.entry.operator_id,
                    "operator": r.entry.operator_email,
                    "operation": r.entry.operation,
                    "target": r.entry.target,
                    "outcome": r.entry.outcome,
                    "detail": serde_json::from_str::<Value>(&r.entry.detail).unwrap_or(Value::Null),
                    "client_ip": r.entry.client_ip,
                    "prev_hash": r.prev_hash,
                    "hash": r.hash,
                })
            })
            .collect();
        done(json!({ "entries": rows }), "-")
    }

    async fn audit_export(&self, input: &Value) -> Result<Done, AdminError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Export {
            #[serde(default)]
            after: i64,
        }
        let p: Export = params(input)?;
        let entries = self.store().audit_entries(p.after.max(0), 10_000).await?;
        let mut csv = String::from(
            "seq,at,operator_id,operator,operation,target,outcome,detail,client_ip,prev_hash,hash\r\n",
        );
        for r in &entries {
            let e = &r.entry;
            let row = [
                r.seq.to_string(),
                e.at.to_string(),
                e.operator_id.map(|i| i.to_string()).unwrap_or_default(),
                e.operator_email.clone(),
                e.operation.clone(),
                e.target.clone(),
                e.outcome.clone(),
                e.detail.clone(),
                e.client_ip.clone(),
                r.prev_hash.clone(),
                r.hash.clone(),
            ];
            let cells: Vec<String> = row.iter().map(|c| csv_cell(c)).collect();
            csv.push_str(&cells.join(","));
            csv.push_str("\r\n");
        }
        let last = entries.last().map_or(p.after, |r| r.seq);
        let mut result = done(
            json!({ "csv": csv, "entries": entries.len(), "last_seq": last, "more": entries.len() == 10_000 }),
            "-",
        )?;
        result.detail = json!({ "entries": entries.len() });
        Ok(result)
    }

    // ----- Operators -----

    async fn operators_list(&self) -> Result<Done, AdminError> {
        let rows: Vec<Value> = self
            .store()
            .operators()
            .await?
            .iter()
            .map(|o| {
                json!({
                    "id": o.id, "email": o.email, "role": o.role, "status": o.status,
                    "allowed_networks": o.allowed_networks, "created_at": o.created_at,
                    "created_by": o.created_by,
                })
            })
            .collect();
        done(json!({ "operators": rows }), "-")
    }

    async fn operators_invite(
        &self,
        operator: &Operator,
        input: &Value,
    ) -> Result<Done, AdminError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Invite {
            email: String,
            role: String,
            #[serde(default)]
            allowed_networks: Option<String>,
        }
        let p: Invite = params(input)?;
        let email = coss_identity::normalise_email(&p.email)?;
        let role = Role::parse(&p.role)
            .ok_or_else(|| AdminError::invalid("invalid_role", format!("no role {:?}", p.role)))?;
        let networks = parse_networks(
            p.allowed_networks
                .as_deref()
                .unwrap_or(crate::DEFAULT_NETWORKS),
        )?;
        let token = hex::encode(coss_identity::random_bytes::<32>()?.as_ref());
        let now = self.now();
        let record = self
            .store()
            .create_operator(
                &NewOperator {
                    email: &email,
                    role: role.as_str(),
                    status: "invited",
                    password_hash: None,
                    sealed_totp: None,
                    setup_hash: Some(&token_hash(&token)),
                    setup_expires_at: now + SETUP_TTL_MS,
                    allowed_networks: &networks,
                    created_by: Some(operator.record.id),
                },
                now,
            )
            .await
            .map_err(|e| match e {
                coss_store::StoreError::EmailTaken => {
                    AdminError::invalid("operator_exists", "an operator has this email")
                }
                other => other.into(),
            })?;
        let mut result = done(
            json!({
                "id": record.id,
                "email": email,
                "role": role.as_str(),
                "setup_token": token,
                "setup_expires_at": now + SETUP_TTL_MS,
            }),
            format!("operator:{}", record.id),
        )?;
        result.detail = json!({ "role": role.as_str(), "allowed_networks": networks });
        Ok(result)
    }

    async fn operators_update(
        &self,
        operator: &Operator,
        input: &Value,
    ) -> Result<Done, AdminError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Update {
            id: i64,
            #[serde(default)]
            role: Option<String>,
            #[serde(default)]
            status: Option<String>,
            #[serde(default)]
            allowed_networks: Option<String>,
        }
        let p: Update = params(input)?;
        if p.id == operator.record.id {
            return Err(AdminError::invalid(
                "own_account",
                "another superadmin changes your own role, status or networks",
            ));
        }
        let current = self
            .store()
            .operator(p.id)
            .await?
            .ok_or(AdminError::NotFound("operator"))?;
        let role = match &p.role {
            Some(role) => Role::parse(role)
                .ok_or_else(|| AdminError::invalid("invalid_role", format!("no role {role:?}")))?
                .as_str(),
            None => Role::parse(&current.role).map_or("support", Role::as_str),
        };
        let status = match p.status.as_deref() {
            Some("active") if current.status == "invited" => {
                return Err(AdminError::invalid(
                    "invalid_status",
                    "an invited operator becomes active by completing the set-up",
                ));
            }
            Some(s @ ("active" | "disabled")) => s,
            Some(other) => {
                return Err(AdminError::invalid(
                    "invalid_status",
                    format!("no status {other:?}: active or disabled"),
                ));
            }
            None => current.status.as_str(),
        };
        let networks = match &p.allowed_networks {
            Some(n) => parse_networks(n)?,
            None => current.allowed_networks.clone(),
        };
        self.store()
            .update_operator(p.id, role, status, &networks, self.now())
            .await?;
        let mut result = done(
            json!({ "id": p.id, "role": role, "status": status, "allowed_networks": networks }),
            format!("operator:{}", p.id),
        )?;
        result.detail = json!({ "before": { "role": current.role, "status": current.status, "allowed_networks": current.allowed_networks } });
        Ok(result)
    }
}

/// One CSV cell (RFC 4180 quoting). A cell a spreadsheet would run as a formula (`=`, `+`,
/// `-`, `@`, tab, CR first: an attacker chooses the email a failed sign-in records) is
/// prefixed with `'`.
pub(crate) fn csv_cell(text: &str) -> String {
    let guarded = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

/// What a four-eyes request changes once approved.
enum Change {
    /// A journaled command of the exchange core.
    Core(Command),
    /// A user's second factor removed (the owner emailed).
    ResetSecondFactor(UserId),
}

/// A reason an operator gives (logged): 1 to 500 characters, not only spaces; trimmed.
fn checked_reason(text: &str) -> Result<&str, AdminError> {
    let trimmed = text.trim();
    if trimmed.is_empty() || text.len() > 500 {
        return Err(AdminError::invalid(
            "invalid_reason",
            "give a reason of 1 to 500 characters",
        ));
    }
    Ok(trimmed)
}

fn not_pending(error: coss_store::StoreError) -> AdminError {
    match error {
        coss_store::StoreError::Conflict => AdminError::NotPending,
        other => other.into(),
    }
}

fn account_of(user: UserId) -> Result<AccountId, AdminError> {
    coss_identity::exchange_account(user).ok_or(AdminError::NotFound("user"))
}

fn operator_view(operator: &Operator) -> Value {
    json!({
        "id": operator.record.id,
        "email": operator.record.email,
        "role": operator.role.as_str(),
        "permissions": operator.role.permissions().iter().map(|p| p.as_str()).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("-1"), "'-1");
        assert_eq!(csv_cell("line\nbreak"), "\"line\nbreak\"");
    }

    #[test]
    fn emails_are_masked_to_their_first_letter_and_domain() {
        assert_eq!(mask_email("trader@example.com"), "t***@example.com");
        assert_eq!(mask_email("nonsense"), "***");
    }
}
