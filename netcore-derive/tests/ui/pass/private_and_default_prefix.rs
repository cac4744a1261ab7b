// A private trait gives private generated items; the prefix defaults to "/TraitName".
mod inner {
    #[netcore::service]
    trait Clock {
        async fn now(&self) -> u64;
    }

    pub fn prefix() -> &'static str {
        ClockServer::PREFIX
    }
}

fn main() {
    assert_eq!(inner::prefix(), "/Clock");
}
