//! The token endpoints: Microsoft Entra ID's client-credentials and federated-token grants,
//! and the instance metadata service of a managed identity; and the bearer check of the
//! Logs Ingestion API.

use super::*;

pub(super) fn issue_token(state: &State, audience: &str) -> (String, u64) {
    let token = format!("emu-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let lifetime = state.settings.token_lifetime;
    state.tokens.lock().expect("tokens").insert(
        token.clone(),
        Token {
            audience: audience.to_string(),
            expires: Instant::now() + lifetime,
        },
    );
    state.counts.lock().expect("counts").tokens_issued += 1;
    (token, lifetime.as_secs())
}

pub(super) fn aad_error(code: &str, description: &str) -> Reply {
    reply(
        StatusCode::BAD_REQUEST,
        json!({"error": code, "error_description": description}),
    )
}

pub(super) async fn token_endpoint(state: &State, tenant: &str, req: Request<Incoming>) -> Reply {
    let body = match read_body(req, 64 * 1024).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let form: HashMap<String, String> = url_form(&body);
    let s = &state.settings;
    if tenant != s.tenant_id {
        return aad_error(
            "invalid_request",
            &format!("AADSTS90002: Tenant '{tenant}' not found."),
        );
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return aad_error(
            "unsupported_grant_type",
            "AADSTS70003: grant_type must be client_credentials",
        );
    }
    if form.get("client_id") != Some(&s.client_id) {
        return aad_error(
            "unauthorized_client",
            "AADSTS700016: Application not found in the directory.",
        );
    }
    let by_secret = form.get("client_secret") == Some(&s.client_secret);
    let by_assertion = form.get("client_assertion_type").map(String::as_str)
        == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        && form.get("client_assertion").is_some_and(|a| !a.is_empty());
    // A certificate assertion names its certificate in `x5t` and must verify; others are
    // federated tokens, taken as they are.
    if by_assertion
        && let Some(assertion) = form.get("client_assertion")
        && let Some(header) = jwt_part(assertion, 0)
        && header.get("x5t").is_some()
        && let Err(reply) = verify_certificate_assertion(state, tenant, assertion, &header)
    {
        return reply;
    }
    if !(by_secret || by_assertion) {
        return aad_error(
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided.",
        );
    }
    let Some(scope) = form.get("scope") else {
        return aad_error(
            "invalid_scope",
            "AADSTS1002012: The provided value for scope is not valid.",
        );
    };
    let Some(audience) = scope.strip_suffix("/.default") else {
        return aad_error(
            "invalid_scope",
            "AADSTS70011: The provided value for the input parameter 'scope' is not valid.",
        );
    };
    let (token, expires_in) = issue_token(state, audience.trim_end_matches('/'));
    reply(
        StatusCode::OK,
        json!({"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in, "access_token": token}),
    )
}

/// Part `i` of a JWT, decoded as JSON.
fn jwt_part(jwt: &str, i: usize) -> Option<serde_json::Value> {
    use base64::Engine as _;
    let part = jwt.split('.').nth(i)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Checks a client assertion as Entra ID does: the registered certificate's thumbprint, its
/// RS256 signature, audience, issuer, subject and lifetime.
#[allow(clippy::result_large_err)]
fn verify_certificate_assertion(
    state: &State,
    tenant: &str,
    assertion: &str,
    header: &serde_json::Value,
) -> Result<(), Reply> {
    use base64::Engine as _;
    let refuse = |what: &str| {
        Err(aad_error(
            "invalid_client",
            &format!("AADSTS700027: Client assertion failed signature validation: {what}."),
        ))
    };
    let Some(cert) = &state.settings.client_certificate else {
        return refuse("no certificate is registered for the application");
    };
    if header["alg"] != "RS256"
        || header["x5t"].as_str() != Some(crate::auth::certificate::thumbprint(cert).as_str())
    {
        return refuse("the certificate is not the one registered");
    }
    let Some((signed, signature)) = assertion.rsplit_once('.') else {
        return refuse("not a JWT");
    };
    let Ok(signature) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature) else {
        return refuse("the signature is not base64url");
    };
    let der = tokio_rustls::rustls::pki_types::CertificateDer::from(cert.as_slice());
    let verified = webpki::EndEntityCert::try_from(&der).is_ok_and(|ee| {
        ee.verify_signature(
            webpki::ring::RSA_PKCS1_2048_8192_SHA256,
            signed.as_bytes(),
            &signature,
        )
        .is_ok()
    });
    if !verified {
        return refuse("the signature does not verify");
    }
    let Some(claims) = jwt_part(assertion, 1) else {
        return refuse("no claims");
    };
    let now = chrono::Utc::now().timestamp();
    let client_id = state.settings.client_id.as_str();
    let audience_ok = claims["aud"]
        .as_str()
        .is_some_and(|a| a.ends_with(&format!("/{tenant}/oauth2/v2.0/token")));
    let in_time = claims["exp"].as_i64().is_some_and(|e| e > now)
        && claims["nbf"].as_i64().is_none_or(|n| n <= now + 300);
    if !(audience_ok && in_time && claims["iss"] == client_id && claims["sub"] == client_id) {
        return refuse("the audience, issuer, subject or lifetime is wrong");
    }
    Ok(())
}

/// An Azure Arc agent (HIMDS): without credentials, 401 naming a fresh key file; with
/// `Authorization: Basic <that key>`, a token.
pub(super) fn arc_himds(state: &State, req: &Request<Incoming>, query: &str) -> Reply {
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "));
    match authorization {
        None => {
            let folder = state.settings.data_dir.join("arc-tokens");
            let key = format!("{:032x}", fastrand::u128(..));
            let path = folder.join(format!("{}.key", &key[..16]));
            if let Err(e) =
                std::fs::create_dir_all(&folder).and_then(|()| std::fs::write(&path, &key))
            {
                return reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"error": format!("cannot write the key file: {e}")}),
                );
            }
            state.arc_keys.lock().expect("arc keys").push(key);
            let mut r = reply(
                StatusCode::UNAUTHORIZED,
                json!({"error": "unauthorized", "error_description": "N/A: see the key file"}),
            );
            if let Ok(v) = format!("Basic realm={}", path.display()).parse() {
                r.headers_mut().insert("www-authenticate", v);
            }
            r
        }
        Some(key)
            if state
                .arc_keys
                .lock()
                .expect("arc keys")
                .iter()
                .any(|k| k == key.trim()) =>
        {
            imds(state, req, query)
        }
        Some(_) => reply(
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid_key", "error_description": "the key does not match"}),
        ),
    }
}

pub(super) fn imds(state: &State, req: &Request<Incoming>, query: &str) -> Reply {
    if req.headers().get("metadata").and_then(|v| v.to_str().ok()) != Some("true") {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_request", "error_description": "Required metadata header not specified"}),
        );
    }
    let q = url_form(query.as_bytes());
    let Some(resource) = q.get("resource") else {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_request", "error_description": "Required query variable 'resource' is missing"}),
        );
    };
    let (token, expires_in) = issue_token(state, resource.trim_end_matches('/'));
    reply(
        StatusCode::OK,
        json!({"access_token": token, "expires_in": expires_in.to_string(), "resource": resource, "token_type": "Bearer"}),
    )
}

#[allow(clippy::result_large_err)]
pub(super) fn check_bearer(state: &State, req: &Request<Incoming>) -> Result<(), Reply> {
    let header = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(token) = header.strip_prefix("Bearer ") else {
        return Err(li_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "A bearer token is required.",
        ));
    };
    let tokens = state.tokens.lock().expect("tokens");
    match tokens.get(token) {
        None => Err(li_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "The access token is invalid.",
        )),
        Some(t) if Instant::now() >= t.expires => Err(li_error(
            StatusCode::UNAUTHORIZED,
            "ExpiredAuthenticationToken",
            "The access token expiry UTC time is earlier than current UTC time.",
        )),
        Some(t) if t.audience != MONITOR_AUDIENCE => Err(li_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAudience",
            &format!(
                "The audience '{}' is invalid; expected {MONITOR_AUDIENCE}.",
                t.audience
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// `a=b&c=d` (percent- and plus-decoded); an unreadable form is an empty one.
pub(super) fn url_form(body: &[u8]) -> HashMap<String, String> {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let f =
            url_form(b"scope=https%3A%2F%2Fmonitor.azure.com%2F%2F.default&a=b+c&e=%zz&last=%41");
        assert_eq!(f["scope"], "https://monitor.azure.com//.default");
        assert_eq!(f["a"], "b c");
        assert_eq!(f["e"], "%zz");
        assert_eq!(f["last"], "A");
    }
}
