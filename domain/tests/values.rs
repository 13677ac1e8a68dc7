use domain::{
    Description, Director, Email, Genre, Genres, MovieId, Role, Title, UserId, Username,
    ValidationError, Year,
};
use serde_json::json;
use uuid::Uuid;

fn message(error: ValidationError) -> String {
    error.to_string()
}

#[test]
fn title_is_trimmed_and_counts_characters_not_bytes() {
    assert_eq!(Title::parse("  Heat \n").unwrap().as_str(), "Heat");
    assert_eq!(
        Title::parse("千と千尋の神隠し").unwrap().as_str(),
        "千と千尋の神隠し"
    );
    let longest = "é".repeat(200);
    assert_eq!(Title::parse(&longest).unwrap().as_str(), longest);
}

#[test]
fn title_rejects_empty_too_long_and_control_characters() {
    for empty in ["", "   ", "\n\t"] {
        let error = Title::parse(empty).unwrap_err();
        assert_eq!(message(error.clone()), "title must be 1 to 200 characters");
        assert_eq!(error.field(), "title");
    }
    assert_eq!(
        Title::parse(&"a".repeat(201)).unwrap_err(),
        ValidationError::Length {
            field: "title",
            min: 1,
            max: 200
        }
    );
    for controlled in ["Bad\ttitle", "Two\nlines", "Bell\u{7}"] {
        assert_eq!(
            message(Title::parse(controlled).unwrap_err()),
            "title must not contain control characters"
        );
    }
}

#[test]
fn director_follows_the_title_rules_with_its_own_field() {
    assert_eq!(
        Director::parse(" Agnès Varda ").unwrap().as_str(),
        "Agnès Varda"
    );
    assert!(Director::parse(&"d".repeat(200)).is_ok());
    let too_long = Director::parse(&"d".repeat(201)).unwrap_err();
    assert_eq!(
        message(too_long.clone()),
        "director must be 1 to 200 characters"
    );
    assert_eq!(too_long.field(), "director");
    assert_eq!(
        message(Director::parse("").unwrap_err()),
        "director must be 1 to 200 characters"
    );
    assert_eq!(
        message(Director::parse("Ridley\rScott").unwrap_err()),
        "director must not contain control characters"
    );
}

#[test]
fn year_is_bounded_by_the_first_film_and_five_years_ahead() {
    assert_eq!(Year::parse(1878, 2026).unwrap().value(), 1878);
    assert_eq!(Year::parse(2031, 2026).unwrap().value(), 2031);
    for out_of_range in [1877, 2032, 0, -5] {
        let error = Year::parse(out_of_range, 2026).unwrap_err();
        assert_eq!(message(error.clone()), "year must be between 1878 and 2031");
        assert_eq!(error.field(), "year");
    }
    assert!(Year::parse(i32::MAX, i32::MAX).is_ok());
}

#[test]
fn stored_years_load_whatever_the_current_year() {
    let far_future: Year = serde_json::from_value(json!(2150)).unwrap();
    assert_eq!(far_future.value(), 2150);
    assert_eq!(serde_json::to_value(far_future).unwrap(), json!(2150));
    let too_early = serde_json::from_value::<Year>(json!(1877)).unwrap_err();
    assert!(too_early.to_string().contains("year must be 1878 or later"));
}

#[test]
fn genre_is_trimmed_and_bounded() {
    assert_eq!(Genre::parse(" Film noir ").unwrap().as_str(), "Film noir");
    assert!(Genre::parse(&"g".repeat(50)).is_ok());
    assert_eq!(
        message(Genre::parse(&"g".repeat(51)).unwrap_err()),
        "genre must be 1 to 50 characters"
    );
    assert_eq!(
        message(Genre::parse(" ").unwrap_err()),
        "genre must be 1 to 50 characters"
    );
    assert_eq!(
        message(Genre::parse("Sci\u{0}Fi").unwrap_err()),
        "genre must not contain control characters"
    );
}

fn genre_names(genres: &Genres) -> Vec<&str> {
    genres.as_slice().iter().map(Genre::as_str).collect()
}

#[test]
fn genres_drop_case_insensitive_duplicates_keeping_the_first_spelling() {
    let genres = Genres::parse(["Drama", "Crime", "drama", " CRIME ", "Thriller"]).unwrap();
    assert_eq!(genre_names(&genres), ["Drama", "Crime", "Thriller"]);
}

#[test]
fn genres_may_be_empty() {
    let none = Genres::parse(Vec::<String>::new()).unwrap();
    assert!(none.as_slice().is_empty());
    assert_eq!(none, Genres::default());
}

#[test]
fn genres_allow_ten_distinct_and_refuse_eleven() {
    let ten: Vec<String> = (0..10).map(|n| format!("Genre {n}")).collect();
    assert_eq!(Genres::parse(&ten).unwrap().as_slice().len(), 10);

    let mut eleven = ten.clone();
    eleven.push("Genre 10".to_owned());
    let error = Genres::parse(&eleven).unwrap_err();
    assert_eq!(message(error.clone()), "at most 10 genres are allowed");
    assert_eq!(error.field(), "genres");

    let mut ten_with_duplicate = ten;
    ten_with_duplicate.push("GENRE 0".to_owned());
    assert_eq!(
        Genres::parse(&ten_with_duplicate).unwrap().as_slice().len(),
        10
    );
}

#[test]
fn genres_refuse_an_invalid_member() {
    assert_eq!(
        message(Genres::parse(["Drama", ""]).unwrap_err()),
        "genre must be 1 to 50 characters"
    );
}

#[test]
fn genres_serialise_as_a_plain_list_and_deserialise_through_parse() {
    let genres = Genres::parse(["Drama", "Crime"]).unwrap();
    assert_eq!(
        serde_json::to_value(&genres).unwrap(),
        json!(["Drama", "Crime"])
    );
    let loaded: Genres = serde_json::from_value(json!(["Drama", "DRAMA", " Crime"])).unwrap();
    assert_eq!(loaded, genres);
    assert!(serde_json::from_value::<Genres>(json!(["", "Drama"])).is_err());
}

#[test]
fn description_may_be_empty_and_keeps_line_breaks() {
    assert_eq!(Description::parse("").unwrap().as_str(), "");
    assert_eq!(Description::parse("   ").unwrap(), Description::default());
    assert_eq!(
        Description::parse(" Line one.\nLine two. ")
            .unwrap()
            .as_str(),
        "Line one.\nLine two."
    );
    assert!(Description::parse(&"ü".repeat(5000)).is_ok());
}

#[test]
fn description_refuses_more_than_5000_characters() {
    let error = Description::parse(&"d".repeat(5001)).unwrap_err();
    assert_eq!(
        message(error.clone()),
        "description must be at most 5000 characters"
    );
    assert_eq!(error.field(), "description");
}

#[test]
fn username_is_trimmed_and_lower_cased() {
    assert_eq!(Username::parse(" Alice ").unwrap().as_str(), "alice");
    assert_eq!(
        Username::parse("Alice").unwrap(),
        Username::parse("ALICE").unwrap()
    );
    for accepted in ["bob", "b.o-b_1", "9lives", &"a".repeat(32)] {
        assert!(Username::parse(accepted).is_ok(), "{accepted}");
    }
}

#[test]
fn username_refuses_bad_length() {
    for bad_length in ["", "ab", &"a".repeat(33)] {
        let error = Username::parse(bad_length).unwrap_err();
        assert_eq!(
            message(error.clone()),
            "username must be 3 to 32 characters"
        );
        assert_eq!(error.field(), "username");
    }
}

#[test]
fn username_refuses_other_characters_and_a_punctuation_start() {
    for bad in [
        "_alice", ".alice", "-alice", "al ice", "älice", "alice!", "al@ice",
    ] {
        assert_eq!(
            Username::parse(bad).unwrap_err(),
            ValidationError::UsernameCharacters,
            "{bad}"
        );
    }
    assert_eq!(
        message(ValidationError::UsernameCharacters),
        "username may contain only ASCII letters, digits, '_', '-' and '.', \
         and must start with a letter or digit"
    );
}

#[test]
fn username_deserialises_normalised() {
    let name: Username = serde_json::from_value(json!("Alice")).unwrap();
    assert_eq!(serde_json::to_value(name).unwrap(), json!("alice"));
    assert!(serde_json::from_value::<Username>(json!("a")).is_err());
}

#[test]
fn email_lower_cases_only_the_domain() {
    assert_eq!(
        Email::parse("  Alice.Smith@Example.COM ").unwrap().as_str(),
        "Alice.Smith@example.com"
    );
    assert!(Email::parse("a@b.co").is_ok());
    assert!(Email::parse("first+tag@mail.example.org").is_ok());
}

#[test]
fn email_refuses_malformed_addresses() {
    for bad in [
        "",
        "alice",
        "alice@",
        "@example.com",
        "alice@example",
        "alice@@example.com",
        "alice@bob@example.com",
        "al ice@example.com",
        "alice@exa mple.com",
        "alice@.example.com",
        "alice@example.com.",
        "alice@example..com",
        "alice\u{0}@example.com",
    ] {
        let error = Email::parse(bad).unwrap_err();
        assert_eq!(error, ValidationError::EmailFormat, "{bad:?}");
        assert_eq!(error.field(), "email");
    }
    assert_eq!(
        message(ValidationError::EmailFormat),
        "email must be a valid address like name@example.com"
    );
}

#[test]
fn email_is_at_most_254_characters() {
    let domain = "@example.com";
    let longest = format!("{}{domain}", "a".repeat(254 - domain.len()));
    assert!(Email::parse(&longest).is_ok());
    let too_long = format!("a{longest}");
    assert_eq!(
        message(Email::parse(&too_long).unwrap_err()),
        "email must be at most 254 characters"
    );
}

#[test]
fn role_parses_case_insensitively_and_serialises_lower_case() {
    assert_eq!("user".parse::<Role>().unwrap(), Role::User);
    assert_eq!(" ADMIN ".parse::<Role>().unwrap(), Role::Admin);
    assert_eq!("Auditor".parse::<Role>().unwrap(), Role::Auditor);
    for role in [Role::User, Role::Admin, Role::Auditor] {
        assert_eq!(serde_json::to_value(role).unwrap(), json!(role.as_str()));
        assert_eq!(role.to_string().parse::<Role>().unwrap(), role);
    }
    assert!(serde_json::from_value::<Role>(json!("Admin")).is_err());
}

#[test]
fn role_refuses_unknown_names() {
    let error = "root".parse::<Role>().unwrap_err();
    assert_eq!(
        message(error.clone()),
        "role must be one of: user, admin, auditor"
    );
    assert_eq!(error.field(), "role");
}

#[test]
fn ids_display_parse_and_serialise_as_uuid_strings() {
    let uuid = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
    let text = "01234567-89ab-cdef-0123-456789abcdef";

    let movie = MovieId::from(uuid);
    assert_eq!(movie.to_string(), text);
    assert_eq!(text.parse::<MovieId>().unwrap(), movie);
    assert_eq!(movie.as_uuid(), uuid);
    assert_eq!(serde_json::to_value(movie).unwrap(), json!(text));
    assert_eq!(
        serde_json::from_value::<MovieId>(json!(text)).unwrap(),
        movie
    );

    let user = UserId::from(uuid);
    assert_eq!(user.to_string(), text);
    assert_eq!(text.parse::<UserId>().unwrap(), user);
    assert_eq!(serde_json::to_value(user).unwrap(), json!(text));
}

#[test]
fn ids_refuse_malformed_text() {
    for bad in [
        "",
        "42",
        "not-a-uuid",
        "01234567-89ab-cdef-0123-456789abcdeg",
    ] {
        let error = bad.parse::<MovieId>().unwrap_err();
        assert_eq!(message(error.clone()), "id must be a UUID");
        assert_eq!(error.field(), "id");
        assert!(bad.parse::<UserId>().is_err());
    }
    assert!(serde_json::from_value::<UserId>(json!("nope")).is_err());
}

#[test]
fn user_id_for_username_is_stable_and_case_insensitive() {
    let alice = UserId::for_username(&Username::parse("alice").unwrap());
    assert_eq!(
        alice,
        UserId::for_username(&Username::parse("ALICE").unwrap())
    );
    assert_ne!(
        alice,
        UserId::for_username(&Username::parse("bob").unwrap())
    );
    assert_eq!(alice.as_uuid().get_version_num(), 5);
    // Pinned: a different value would orphan every stored user stream.
    assert_eq!(alice.to_string(), "ef821263-28cc-5a3f-8463-5089919c7593");
}
