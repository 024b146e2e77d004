"""The studio's pages, one module per page; `studio.app` routes to them."""
