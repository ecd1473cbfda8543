//! Password and SASL authentication against users' stored credentials (`auth::scram`): a
//! user name and password as any front end takes them (SASL/PLAIN on the Kafka listener),
//! SCRAM-SHA-256/512 as the Kafka listener runs it, OAUTHBEARER tokens validated as gRPC's
//! bearer tokens are; and the management of users' SCRAM credentials (Kafka's
//! `AlterUserScramCredentials` / `DescribeUserScramCredentials`, `shale user`).

use super::{Api, Identity, Principal, Via};
use crate::acl::{CLUSTER, Operation, ResourceType};
use crate::audit::{self, Resource};
use crate::auth::scram::{self, Credential, Exchange, Mechanism, ScramStore};
use shale_core::error::Error;

/// A change to one user's credential for one mechanism.
#[derive(Debug, Clone)]
pub enum ScramChange {
    /// Set it from a salted password (as a Kafka admin client computes it).
    Salted {
        /// The salt.
        salt: Vec<u8>,
        /// The salted password.
        salted_password: Vec<u8>,
        /// PBKDF2 iterations.
        iterations: u32,
    },
    /// Set it from a password (a fresh salt is drawn).
    Password {
        /// The password.
        password: String,
        /// PBKDF2 iterations.
        iterations: u32,
    },
    /// Remove it.
    Delete,
}

impl Api {
    fn scram_store(&self) -> ScramStore {
        let store = self.broker.topic_store();
        ScramStore::new(store.store().clone(), store.keys().clone())
    }

    fn user_identity(&self, user: &str) -> Identity {
        let principal = Principal::user(user);
        let broker = self.auth.is_broker(&principal);
        Identity { principal, via: Via::Password, broker }
    }

    /// A user's password checked against its stored SCRAM credential, for any front end
    /// that takes a user name and a password (SASL/PLAIN on the Kafka listener): the user's
    /// identity, or `scheme`'s failure (naming neither the user nor whether it exists).
    pub async fn password_identity(
        &self,
        scheme: &str,
        user: &str,
        password: &str,
    ) -> Result<Identity, Error> {
        let store = self.scram_store();
        for m in Mechanism::ALL {
            if let Some(c) = store.get(user, m).await? {
                if c.verify_password(m, password)? {
                    return Ok(self.user_identity(user));
                }
                return Err(scram::failed(scheme));
            }
        }
        Err(scram::failed(scheme))
    }

    /// SASL/SCRAM's first round: the server's first message and the exchange to finish.
    pub async fn scram_first(
        &self,
        m: Mechanism,
        msg: &[u8],
    ) -> Result<(Vec<u8>, Exchange), Error> {
        let (user, nonce, bare) = scram::client_first(msg)?;
        let credential =
            self.scram_store().get(&user, m).await?.ok_or_else(|| scram::failed(m.name()))?;
        scram::server_first(m, &user, &nonce, &bare, &credential)
    }

    /// SASL/SCRAM's final round: the server's final message and who authenticated.
    pub fn scram_final(
        &self,
        exchange: &Exchange,
        msg: &[u8],
    ) -> Result<(Vec<u8>, Identity), Error> {
        let answer = scram::server_final(exchange, msg)?;
        Ok((answer, self.user_identity(exchange.user())))
    }

    /// SASL/OAUTHBEARER: the token validated as a gRPC bearer token is (a static token,
    /// or a JWT from the configured issuer).
    pub async fn sasl_bearer(&self, token: &str) -> Result<Identity, Error> {
        self.auth.authenticate(Some(token), None).await
    }

    /// Changes users' SCRAM credentials (Alter on the cluster); the outcome per change.
    pub async fn alter_scram(
        &self,
        who: &Identity,
        changes: Vec<(String, Mechanism, ScramChange)>,
    ) -> Result<Vec<Result<(), Error>>, Error> {
        let acl = self.broker.acl();
        acl.check(
            who,
            "AlterUserScramCredentials",
            Operation::Alter,
            ResourceType::Cluster,
            CLUSTER,
        )?;
        let store = self.scram_store();
        let mut out = Vec::with_capacity(changes.len());
        for (user, m, change) in changes {
            let done = match change {
                ScramChange::Salted { salt, salted_password, iterations } => {
                    match Credential::from_salted(m, &salt, &salted_password, iterations) {
                        Ok(c) => store.put(&user, m, &c).await,
                        Err(e) => Err(e),
                    }
                }
                ScramChange::Password { password, iterations } => {
                    match Credential::from_password(m, &password, iterations) {
                        Ok(c) => store.put(&user, m, &c).await,
                        Err(e) => Err(e),
                    }
                }
                ScramChange::Delete => match store.delete(&user, m).await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(Error::new(
                        shale_core::error::ErrorKind::NotFound,
                        shale_core::error::Reason::Other("RESOURCE_NOT_FOUND".into()),
                        format!("user {user:?} has no {} credential", m.name()),
                    )),
                    Err(e) => Err(e),
                },
            };
            let what = format!("{user} {}", m.name());
            audit::mutation(who, "alter_scram_credential", Resource::User(&what), &done);
            out.push(done);
        }
        Ok(out)
    }

    /// Users with the mechanisms and iterations of their credentials (Describe on the
    /// cluster): all, or those named (an unknown one is NotFound).
    pub async fn describe_scram(
        &self,
        who: &Identity,
        users: Option<&[String]>,
    ) -> Result<Vec<(String, Result<Vec<(Mechanism, u32)>, Error>)>, Error> {
        let acl = self.broker.acl();
        let action = "DescribeUserScramCredentials";
        acl.check(who, action, Operation::Describe, ResourceType::Cluster, CLUSTER)?;
        let all = self.scram_store().list().await?;
        Ok(match users {
            None => all.into_iter().map(|(u, ms)| (u, Ok(ms))).collect(),
            Some(names) => names
                .iter()
                .map(|n| match all.iter().find(|(u, _)| u == n) {
                    Some((_, ms)) => (n.clone(), Ok(ms.clone())),
                    None => (
                        n.clone(),
                        Err(Error::new(
                            shale_core::error::ErrorKind::NotFound,
                            shale_core::error::Reason::Other("RESOURCE_NOT_FOUND".into()),
                            format!("user {n:?} has no SCRAM credentials"),
                        )),
                    ),
                })
                .collect(),
        })
    }
}
