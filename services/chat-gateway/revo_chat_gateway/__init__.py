"""The chat gateway: the platform's only public entry (HTTP API, WebSocket chat, web page).

It authenticates, binds every request to the caller's tenant, submits runs and streams
their tokens and events; it holds no agent logic."""
