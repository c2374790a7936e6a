pub fn routes() -> axum::Router<crate::web::AppState> {
    axum::Router::new()
}
