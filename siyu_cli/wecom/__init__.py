"""WeCom (企业微信) server API: the client, its token cache, callback crypto and events."""
