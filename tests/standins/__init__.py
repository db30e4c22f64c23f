"""Local stand-ins of cloud endpoints (AWS via moto, Google OAuth + container API, Entra ID + ARM).

Each serves real HTTP(S) on 127.0.0.1 with port 0 and counts the requests it answers, so tests observe
what the SDKs really did; none of them patches an SDK.
"""
