// Two method routes whose 32-bit route ids collide ("/P/m231459" and "/P/m1149816").
#[netcore::service(prefix = "/P")]
trait P {
    async fn m231459(&self);
    async fn m1149816(&self);
}

fn main() {}
