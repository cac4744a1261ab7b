#[netcore::service]
trait Feed {
    #[netcore(priority = 9)]
    async fn too_urgent(&self);
    #[netcore(retries = 3)]
    async fn unknown_option(&self);
    #[inline]
    async fn foreign_attribute(&self);
}

fn main() {}
