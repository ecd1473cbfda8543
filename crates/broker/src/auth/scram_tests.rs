use super::*;

/// RFC 7677's SCRAM-SHA-256 example, end to end.
#[test]
fn the_rfc_7677_exchange_verifies_and_signs() {
    let m = Mechanism::Sha256;
    let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    let mut salted = vec![0u8; 32];
    pbkdf2::derive(m.pbkdf2(), NonZeroU32::new(4096).unwrap(), &salt, b"pencil", &mut salted);
    let credential = Credential::from_salted(m, &salt, &salted, 4096).unwrap();
    let (user, nonce, bare) = client_first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
    assert_eq!((user.as_str(), nonce.as_str()), ("user", "rOprNGfwEbeRWgbNEkqO"));
    let (stored_key, server_key) =
        (B64.decode(&credential.stored_key).unwrap(), B64.decode(&credential.server_key).unwrap());
    let server_nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    let exchange = Exchange {
        mechanism: m,
        user,
        nonce: server_nonce.into(),
        transcript: format!("{bare},r={server_nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
        stored_key,
        server_key,
    };
    let final_msg =
        format!("c=biws,r={server_nonce},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
    let answer = server_final(&exchange, final_msg.as_bytes()).unwrap();
    assert_eq!(answer, b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    let wrong = format!("c=biws,r={server_nonce},p=AHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
    assert!(server_final(&exchange, wrong.as_bytes()).is_err(), "a wrong proof is refused");
    let other_nonce =
        "c=biws,r=rOprNGfwEbeRWgbNEkqOxx,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    assert!(server_final(&exchange, other_nonce.as_bytes()).is_err(), "the nonce must be ours");
    assert!(credential.verify_password(m, "pencil").unwrap());
    assert!(!credential.verify_password(m, "pencil2").unwrap());
}

#[test]
fn credentials_from_passwords_verify_for_both_mechanisms() {
    for m in Mechanism::ALL {
        let c = Credential::from_password(m, "s3cret", MIN_ITERATIONS).unwrap();
        assert!(c.verify_password(m, "s3cret").unwrap(), "{m:?}");
        assert!(!c.verify_password(m, "s3cre").unwrap(), "{m:?}");
    }
    assert!(Credential::from_password(Mechanism::Sha256, "x", 10).is_err(), "too few iterations");
}

#[test]
fn client_first_messages_are_parsed_strictly() {
    let (user, _, _) = client_first(b"n,,n=a=2Cb=3Dc,r=xyz").unwrap();
    assert_eq!(user, "a,b=c");
    for bad in [
        &b"p=tls-unique,,n=u,r=x"[..],
        b"n,,n=u",
        b"n,,r=x",
        b"n,,n=u=2X,r=x",
        b"n,,n=u,r=x,tokenauth=true",
        b"\xff",
    ] {
        assert!(client_first(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
    }
}
