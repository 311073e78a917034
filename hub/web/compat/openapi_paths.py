"""OpenAPI 3.1 path items for the CometChat, Agora and iFlyChat routes and for Rocket.Chat's
``users.listByStatus``; :mod:`hub.web.openapi` merges ``PATHS``, ``SCHEMAS``,
``SECURITY_SCHEMES`` and ``TAGS`` into ``/openapi.json``."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}  # fmt: skip


def _path(name: str, description: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"},
            "description": description}  # fmt: skip


_STRING = {"type": "string"}
_BOOL = {"type": "boolean"}
_INT = {"type": "integer"}

# -- Agora ---------------------------------------------------------------------------------

_AGORA_TAG = "Agora Chat"
_AGORA_AUTH: list[dict[str, list[str]]] = [{"bearer": []}]
_ORG_APP = [
    _path("org", "Organization name (any; echoed as `organization`)."),
    _path("app", "App name (any; echoed as `applicationName`)."),
]
_USERNAME = _path("username", "The username (case-insensitive) or, failing that, the user id.")


def _agora_errors(*codes: str) -> dict[str, Schema]:
    text = {
        "400": "illegal_argument (the description names the field) or "
        "duplicate_unique_property_exists.",
        "401": "unauthorized: missing or wrong bearer token.",
        "403": "forbidden_op: a user token may only read (and change its own password).",
        "404": "service_resource_not_found: unknown user.",
        "501": "not_implemented: messaging, not presence.",
        "503": "The presence store is unreachable; retry later.",
    }
    return {c: _json(_ref("AgoraError"), text[c]) for c in ("401", "503", *codes)}


def _agora(summary: str, op_id: str, ok: Schema, *, params: list[Schema] | None = None,
           body: Schema | None = None, errors: tuple[str, ...] = ("400",)) -> Schema:
    op: Schema = {
        "tags": [_AGORA_TAG],
        "summary": summary,
        "operationId": op_id,
        "security": _AGORA_AUTH,
        "parameters": [*_ORG_APP, *(params or [])],
        "responses": {"200": _json(ok, "Success."), **_agora_errors(*errors)},
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op  # fmt: skip


_LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
                "How many users.")  # fmt: skip
_CURSOR = _query("cursor", _STRING, "The cursor of the previous page's answer.")

_AGORA_NEW_USER = {
    "type": "object",
    "required": ["username", "password"],
    "properties": {
        "username": {"type": "string", "pattern": "^[A-Za-z0-9_.\\-]{1,64}$"},
        "password": {"type": "string", "description": "At most 64 bytes."},
        "nickname": {"type": "string", "maxLength": 100},
    },
}

_AGORA_PATHS: dict[str, Schema] = {
    "/{org}/{app}/users": {
        "post": _agora(
            "Agora: register one user, or up to 60 (failures in `data`)",
            "agoraRegister",
            _ref("AgoraUsers"),
            body={"oneOf": [_AGORA_NEW_USER,
                            {"type": "array", "minItems": 1, "maxItems": 60,
                             "items": _AGORA_NEW_USER}]},
            errors=("400", "403"),
        ),
        "get": _agora(
            "Agora: list users by registration time, `limit` and `cursor`",
            "agoraListUsers",
            _ref("AgoraUsers"),
            params=[_LIMIT, _CURSOR],
        ),
        "delete": _agora(
            "Agora: delete the `limit` oldest users (after `cursor`)",
            "agoraDeleteUsers",
            _ref("AgoraUsers"),
            params=[_LIMIT, _CURSOR],
            errors=("400", "403"),
        ),
    },
    "/{org}/{app}/users/batch/status": {
        "post": _agora(
            "Agora: online or offline for up to 100 users (unknown users are offline)",
            "agoraBatchStatus",
            {"type": "object", "properties": {
                "action": _STRING,
                "data": {"type": "array", "items": {
                    "type": "object",
                    "additionalProperties": {"enum": ["online", "offline"]}}},
                "timestamp": _INT, "duration": _INT}},
            body={"type": "object", "required": ["usernames"], "properties": {
                "usernames": {"type": "array", "minItems": 1, "maxItems": 100,
                              "items": _STRING}}},
        ),
    },
    "/{org}/{app}/users/{username}": {
        "get": _agora("Agora: query one user", "agoraGetUser", _ref("AgoraUsers"),
                      params=[_USERNAME], errors=("404",)),
        "delete": _agora("Agora: delete one user (it leaves its rooms, sockets close 4004)",
                         "agoraDeleteUser", _ref("AgoraUsers"), params=[_USERNAME],
                         errors=("403", "404")),
    },
    "/{org}/{app}/users/{username}/password": {
        "put": _agora(
            "Agora: set a user's password (admin, or the user itself)",
            "agoraSetPassword",
            _ref("AgoraAction"),
            params=[_USERNAME],
            body={"type": "object", "required": ["newpassword"],
                  "properties": {"newpassword": {"type": "string",
                                                 "description": "At most 64 bytes."}}},
            errors=("400", "403", "404"),
        ),
    },
    "/{org}/{app}/users/{username}/deactivate": {
        "post": _agora("Agora: ban a user (sockets close 4003 everywhere, offline at once)",
                       "agoraDeactivate", _ref("AgoraUsers"), params=[_USERNAME],
                       errors=("403", "404")),
    },
    "/{org}/{app}/users/{username}/activate": {
        "post": _agora("Agora: lift a ban", "agoraActivate", _ref("AgoraAction"),
                       params=[_USERNAME], errors=("403", "404")),
    },
    "/{org}/{app}/users/{username}/disconnect": {
        "get": _agora("Agora: force a user offline (sockets close 4004 everywhere)",
                      "agoraDisconnect",
                      {"allOf": [_ref("AgoraUsers"), {"type": "object", "properties": {
                          "data": {"type": "object",
                                   "properties": {"result": {"const": True}}}}}]},
                      params=[_USERNAME], errors=("403", "404")),
    },
    "/{org}/{app}/users/{username}/status": {
        "get": _agora("Agora: whether a user is online", "agoraStatus",
                      {"allOf": [_ref("AgoraUsers"), {"type": "object", "properties": {
                          "data": {"type": "object", "additionalProperties": {
                              "enum": ["online", "offline"]}}}}]},
                      params=[_USERNAME], errors=("404",)),
    },
    "/{org}/{app}/users/{username}/offline_msg_count": {
        "get": _agora("Agora: offline message count: not served (messaging)",
                      "agoraOfflineMsgCount", _ref("AgoraError"), params=[_USERNAME],
                      errors=("501",)),
    },
    "/{org}/{app}/users/{username}/offline_msg_status/{msg_id}": {
        "get": _agora("Agora: offline message status: not served (messaging)",
                      "agoraOfflineMsgStatus", _ref("AgoraError"),
                      params=[_USERNAME, _path("msg_id", "The message id.")],
                      errors=("501",)),
    },
}

# -- CometChat -----------------------------------------------------------------------------

_CC_PATHS: dict[str, Schema] = {
    "/v3/users": {
        "get": {
            "tags": ["CometChat"],
            "summary": "CometChat: list users with search, presence, roles, tags, by page",
            "operationId": "cometchatListUsers",
            "security": [{"cometchatApiKey": []}],
            "parameters": [
                _query("searchKey", _STRING, "Prefix of the uid and/or the name."),
                _query("searchIn", {"type": "array", "items": {"enum": ["name", "uid"]}},
                       "Where searchKey looks (both by default)."),
                _query("status", {"enum": ["available", "offline"]},
                       "available = not offline."),
                _query("count", _BOOL, "Accepted; the pagination always has the total."),
                _query("perPage", {"type": "integer", "minimum": 1, "maximum": 1000,
                                   "default": 100}, "Users per page."),
                _query("page", {"type": "integer", "minimum": 1, "default": 1}, "Page."),
                _query("role", _STRING, "Users with this role."),
                _query("roles", {"type": "array", "items": _STRING},
                       "Users with any of these roles."),
                _query("withTags", _BOOL, "Include each user's tags."),
                _query("tags", {"type": "array", "items": _STRING},
                       "Users with any of these tags."),
                _query("onlyDeactivated", _BOOL, "Only deactivated users."),
                _query("withDeactivated", _BOOL, "Deactivated users too."),
            ],
            "responses": {
                "200": _json(_ref("CometChatUsers"), "A page of users."),
                "400": _json(_ref("CometChatError"), "Bad input: devMessage names it."),
                "401": _json(_ref("CometChatError"), "Missing or wrong apikey header."),
                "503": _json(_ref("CometChatError"), "The presence store is unreachable."),
            },
        }
    }
}

# -- iFlyChat ------------------------------------------------------------------------------


def _ifly(summary: str, op_id: str, ok: Schema, *, params: list[Schema] | None = None,
          fields: Schema | None = None, served: bool = True) -> Schema:
    body = {"type": "object", "required": ["api_key"],
            "properties": {"api_key": {"type": "string",
                                       "description": "The hub's admin key."},
                           **(fields or {})}}
    responses: Schema = {
        "200": _json(ok, "Success."),
        "400": _json(_ref("IflyError"), "Bad input: the message names the field."),
        "401": _json(_ref("IflyError"), "Missing or wrong api_key."),
        "404": _json(_ref("IflyError"), "Unknown room or user."),
        "503": _json(_ref("IflyError"), "The presence store is unreachable."),
    }
    if not served:
        responses = {"501": _json(_ref("IflyError"), "Messaging, not presence: not served."),
                     "401": responses["401"]}
    return {
        "tags": ["iFlyChat"], "summary": summary, "operationId": op_id,
        "parameters": params or [],
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": body},
            "application/x-www-form-urlencoded": {"schema": body}}},
        "responses": responses,
    }  # fmt: skip


_SUCCESS = {"type": "object", "properties": {"success": {"const": True}}}
_ROOM = _path("room", "The room id.")
_ROOM_FIELDS = {
    "room_name": {"type": "string", "maxLength": 200},
    "room_role": {"type": "string", "description": "Accepted, not enforced."},
    "room_private": {"type": "string", "description": "Accepted, not enforced."},
    "room_moderate": {"type": "string", "description": "Accepted, not enforced."},
}

_IFLY_PATHS: dict[str, Schema] = {
    "/api/1.1/users/list": {"post": _ifly(
        "iFlyChat: every user who is online", "iflychatUsersList", _ref("IflyUsers"))},
    "/api/1.1/room/create": {"post": _ifly(
        "iFlyChat: create a room", "iflychatRoomCreate",
        {"type": "object", "properties": {"room_id": {"type": ["integer", "string"]}}},
        fields={**_ROOM_FIELDS, "room_id": {"type": "string",
                                             "description": "Choose the id (optional)."}})},
    "/api/1.1/room/list": {"post": _ifly(
        "iFlyChat: every room", "iflychatRoomList", _ref("IflyRooms"),
        fields={"offset": {"type": "integer", "minimum": 0},
                "limit": {"type": "integer", "minimum": 1, "maximum": 1000}})},
    "/api/1.1/room/{room}/edit": {"post": _ifly(
        "iFlyChat: rename a room", "iflychatRoomEdit", _SUCCESS, params=[_ROOM],
        fields=_ROOM_FIELDS)},
    "/api/1.1/room/{room}/delete": {"post": _ifly(
        "iFlyChat: delete a room (its members leave it)", "iflychatRoomDelete", _SUCCESS,
        params=[_ROOM])},
    "/api/1.1/room/{room}/users": {"post": _ifly(
        "iFlyChat: the members of a room who are online", "iflychatRoomUsers",
        _ref("IflyUsers"), params=[_ROOM])},
    "/api/1.1/user/{user}/kick": {"post": _ifly(
        "iFlyChat: kick a user (sockets close 4004 everywhere, offline at once)",
        "iflychatUserKick", _SUCCESS, params=[_path("user", "The user id.")],
        fields={"room_id": {"type": "string",
                            "description": "Also remove the user from this room."}})},
    "/api/1.1/threads/get": {"post": _ifly(
        "iFlyChat: thread history: not served (messaging)", "iflychatThreadsGet",
        _ref("IflyError"), served=False)},
    "/api/1.1/room/{room}/publish": {"post": _ifly(
        "iFlyChat: publish to a room: not served (messaging)", "iflychatRoomPublish",
        _ref("IflyError"), params=[_ROOM], served=False)},
    "/api/1.1/user/{user}/publish": {"post": _ifly(
        "iFlyChat: publish to a user: not served (messaging)", "iflychatUserPublish",
        _ref("IflyError"), params=[_path("user", "The user id.")], served=False)},
}  # fmt: skip

# -- Rocket.Chat users.listByStatus ---------------------------------------------------------

_RC_PATHS: dict[str, Schema] = {
    "/api/v1/users.listByStatus": {
        "get": {
            "tags": ["Rocket.Chat"],
            "summary": "Rocket.Chat: registered users by activation, login, type, roles",
            "operationId": "rcUsersListByStatus",
            "security": [{"rcToken": [], "rcUserId": []}, {"bearer": []}],
            "parameters": [
                _query("status", {"enum": ["active", "deactivated"]}, "Activation."),
                _query("hasLoggedIn", _BOOL, "Whether the user ever connected."),
                _query("type", _STRING, "user, bot, app ..."),
                _query("roles[]", {"type": "array", "items": _STRING}, "Any of these roles."),
                _query("searchTerm", _STRING, "Part of the username or the name."),
                _query("offset", {"type": "integer", "minimum": 0}, "Users to skip."),
                _query("count", {"type": "integer", "minimum": 0, "maximum": 100,
                                 "default": 50}, "Users to return (0: the most, 100)."),
                _query("sort", _STRING, 'JSON, e.g. {"username": 1} or {"lastLogin": -1}.'),
            ],
            "responses": {
                "200": _json(_ref("RcUserList"), "A page of users."),
                "400": _json(_ref("RcFailure"), "Bad input: the message names the field."),
                "401": _json(_ref("RcUnauthorized"), "Missing or wrong credentials."),
                "503": _json(_ref("RcFailure"), "The presence store is unreachable."),
            },
        }
    }
}

PATHS: dict[str, Schema] = {**_AGORA_PATHS, **_CC_PATHS, **_IFLY_PATHS, **_RC_PATHS}

_AGORA_ENTITY = {
    "type": "object",
    "properties": {
        "uuid": _STRING, "type": {"const": "user"}, "created": _INT, "modified": _INT,
        "username": _STRING, "activated": _BOOL, "nickname": _STRING,
    },
}  # fmt: skip

SCHEMAS: dict[str, Schema] = {
    "AgoraUsers": {
        "type": "object",
        "description": "Agora's common response fields with the users concerned.",
        "properties": {
            "action": _STRING, "application": _STRING, "path": _STRING, "uri": _STRING,
            "params": {"type": "object"}, "entities": {"type": "array", "items": _AGORA_ENTITY},
            "data": {}, "cursor": _STRING, "count": _INT, "timestamp": _INT,
            "duration": _INT, "organization": _STRING, "applicationName": _STRING,
        },
    },
    "AgoraAction": {
        "type": "object",
        "properties": {"action": _STRING, "timestamp": _INT, "duration": _INT},
    },
    "AgoraError": {
        "type": "object",
        "required": ["error", "error_description"],
        "properties": {
            "error": _STRING, "exception": _STRING, "timestamp": _INT, "duration": _INT,
            "error_description": _STRING,
        },
    },
    "CometChatUser": {
        "type": "object",
        "properties": {
            "uid": _STRING, "name": _STRING, "avatar": _STRING, "metadata": {"type": "object"},
            "status": {"enum": ["available", "offline"]}, "role": _STRING,
            "tags": {"type": "array", "items": _STRING}, "createdAt": _INT, "updatedAt": _INT,
            "lastActiveAt": _INT, "deactivatedAt": _INT,
        },
    },
    "CometChatUsers": {
        "type": "object",
        "properties": {
            "data": {"type": "array", "items": _ref("CometChatUser")},
            "meta": {"type": "object", "properties": {"pagination": {
                "type": "object", "properties": {
                    "total": _INT, "count": _INT, "per_page": _INT, "current_page": _INT,
                    "total_pages": _INT}}}},
            "cursor": {"type": "object",
                       "properties": {"updatedAt": _INT, "affix": {"const": "prepend"}}},
        },
    },
    "CometChatError": {
        "type": "object",
        "properties": {"error": {"type": "object", "properties": {
            "message": _STRING, "devMessage": _STRING, "source": _STRING, "code": _STRING}}},
    },
    "IflyUser": {
        "type": "object",
        "properties": {
            "user_id": _STRING, "user_role": _STRING, "user_name": _STRING,
            "user_status": {"enum": ["1", "2", "3"],
                            "description": "1 online, 2 away, 3 busy."},
            "user_avatar_url": _STRING, "user_profile_url": _STRING,
        },
    },
    "IflyUsers": {
        "type": "object",
        "properties": {"users": {"type": "array", "items": _ref("IflyUser")}, "length": _INT},
    },
    "IflyRooms": {
        "type": "object",
        "properties": {
            "rooms": {"type": "array", "items": {"type": "object", "properties": {
                "room_id": {"type": ["integer", "string"]}, "room_name": _STRING,
                "member_count": _INT}}},
            "length": _INT, "total": _INT,
        },
    },
    "IflyError": {
        "type": "object",
        "properties": {"success": {"const": False}, "error": _STRING, "code": _INT},
    },
    "RcListUser": {
        "type": "object",
        "properties": {
            "_id": _STRING, "username": _STRING, "type": _STRING,
            "roles": {"type": "array", "items": _STRING}, "status": _STRING,
            "active": _BOOL, "name": _STRING, "lastLogin": _STRING, "avatarETag": _STRING,
        },
    },
    "RcUserList": {
        "type": "object",
        "properties": {
            "users": {"type": "array", "items": _ref("RcListUser")},
            "count": _INT, "offset": _INT, "total": _INT, "success": {"const": True},
        },
    },
}

SECURITY_SCHEMES: dict[str, Schema] = {
    "cometchatApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "apikey",
        "description": "CometChat style: the hub's admin key.",
    },
}

TAGS = [
    {"name": "Agora Chat", "description": "Agora Chat's user system at its own paths."},
    {"name": "CometChat", "description": "CometChat's user list at its own path."},
    {"name": "iFlyChat", "description": "iFlyChat's API 1.1: online users, rooms, kicks."},
]
