"""terminology: the platform's terminology service (WS/T 790.9 术语注册)."""
