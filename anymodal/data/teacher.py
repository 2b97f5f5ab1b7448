"""The teacher of ``anymodal data generate``: one OpenAI-compatible chat completions endpoint.

Any server that speaks ``POST {url}/chat/completions`` will do: OpenAI, vLLM, Ollama, or
``anymodal serve`` itself. A request is tried again, after a doubling wait with jitter (the
server's ``Retry-After`` when it sends one, up to ``max_backoff_s``), when the failure may pass:

* HTTP 408, 409, 425, 429 and every 5xx;
* no reply within ``timeout_s``, a dropped connection;
* a 200 whose body is not a chat completion (not JSON, or no ``choices[0].message``).

Other failures are not retried. 401, 403 and 404 (a bad key, a wrong URL or model) are *fatal*:
every request would fail the same way, so the run stops at once; so is a teacher that cannot be
reached at all after the retries. Any other 4xx fails that one request, and a rerun asks again.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from anymodal.contract.errors import AnymodalError, UsageError

if TYPE_CHECKING:
    import httpx

#: Statuses a request is tried again on, besides every 5xx.
RETRIED_STATUSES = frozenset({408, 409, 425, 429})
#: Statuses that stop the run: no request can succeed while they hold.
FATAL_STATUSES = frozenset({401, 403, 404})


@dataclass(frozen=True)
class TeacherOptions:
    """How the teacher is asked: the environment variable its key is read from, the reply's length
    and temperature, and how long to wait and how often to try again."""

    key_env: str = "OPENAI_API_KEY"
    max_tokens: int = 1024
    temperature: float = 0.2
    timeout_s: float = 120.0
    retries: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0


@dataclass(frozen=True, kw_only=True)
class TeacherSettings(TeacherOptions):
    """Where the teacher is (``url`` the API's base, e.g. ``.../v1``), which model, with which key."""

    url: str
    model: str
    api_key: str | None = None


@dataclass(frozen=True)
class TeacherReply:
    """One chat completion: its text, why it stopped (``"length"`` when cut short), its token
    counts (0 where the server reports no usage) and how many tries it took."""

    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    attempts: int


class TeacherError(AnymodalError):
    """A request the teacher did not answer; ``fatal`` when no other request can succeed either."""

    def __init__(self, message: str, hint: str | None = None, fatal: bool = False) -> None:
        super().__init__(message, hint)
        self.fatal = fatal


class _Retry(Exception):
    """A failure that may pass: what it was, and how long the server asked us to wait."""

    def __init__(self, problem: str, wait_s: float | None = None, unreachable: bool = False) -> None:
        super().__init__(problem)
        self.problem = problem
        self.wait_s = wait_s
        self.unreachable = unreachable


class Teacher:
    """A client of one teacher; :meth:`complete` may be called from many threads at once."""

    def __init__(
        self,
        settings: TeacherSettings,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        try:
            import httpx
        except ImportError:
            raise UsageError(
                "anymodal data generate reaches its teacher over HTTP with httpx, which is not installed",
                hint="pip install 'anymodal[data]'",
            ) from None
        self.settings = settings
        self._httpx = httpx
        self._sleep = sleep
        self._jitter = jitter
        headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        self._client = httpx.Client(
            base_url=settings.url.rstrip("/") + "/", headers=headers, timeout=settings.timeout_s
        )

    def complete(self, messages: Sequence[Mapping[str, Any]]) -> TeacherReply:
        """The teacher's reply to ``messages``, after as many tries as the settings allow."""
        body = {
            "model": self.settings.model,
            "messages": list(messages),
            "max_tokens": self.settings.max_tokens,
            "temperature": self.settings.temperature,
        }
        tries = self.settings.retries + 1
        for attempt in range(1, tries + 1):
            try:
                return self._reply(self._post(body), attempt)
            except _Retry as failure:
                if attempt == tries:
                    raise self._exhausted(failure, tries) from None
                self._sleep(self._wait(attempt, failure.wait_s))
        raise AssertionError("unreachable: the last try returns or raises")

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Teacher:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _post(self, body: Mapping[str, Any]) -> httpx.Response:
        httpx = self._httpx
        try:
            response = self._client.post("chat/completions", json=body)
        except httpx.TimeoutException:
            raise _Retry(f"no reply within {self.settings.timeout_s:g} s") from None
        except httpx.ConnectError as error:
            raise _Retry(f"cannot connect ({error})", unreachable=True) from None
        except httpx.TransportError as error:
            raise _Retry(f"the connection failed ({type(error).__name__}: {error})") from None
        status = response.status_code
        if status == 200:
            return response
        problem = f"HTTP {status}{_server_message(response)}"
        if status in RETRIED_STATUSES or status >= 500:
            raise _Retry(problem, _retry_after(response.headers.get("retry-after")))
        if status in FATAL_STATUSES:
            raise self._fatal(status, problem)
        raise TeacherError(f"the teacher at {self.settings.url} refused a request: {problem}")

    def _reply(self, response: httpx.Response, attempt: int) -> TeacherReply:
        try:
            data = response.json()
        except ValueError:
            raise _Retry(f"a reply that is not JSON: {response.text[:120]!r}") from None
        try:
            choice = data["choices"][0]
            content = choice["message"]["content"]
            if content is not None and not isinstance(content, str):
                raise TypeError("content is not a string")
        except (KeyError, IndexError, TypeError):
            raise _Retry(f"a reply that is not a chat completion: {response.text[:120]!r}") from None
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        return TeacherReply(
            text=content or "",
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=_count(usage.get("prompt_tokens")),
            completion_tokens=_count(usage.get("completion_tokens")),
            attempts=attempt,
        )

    def _wait(self, attempt: int, asked_s: float | None) -> float:
        """The server's ``Retry-After``, else ``backoff_s`` doubled per try with up to half of it
        taken off at random (so many clients do not retry in step); both at most ``max_backoff_s``."""
        settings = self.settings
        if asked_s is not None:
            return min(asked_s, settings.max_backoff_s)
        doubled = min(settings.backoff_s * 2 ** (attempt - 1), settings.max_backoff_s)
        return doubled * (0.5 + 0.5 * self._jitter())

    def _fatal(self, status: int, problem: str) -> TeacherError:
        settings = self.settings
        if status == 404:
            hint = (
                f"check --teacher-url (the API's base, often ending in /v1) and that it serves "
                f"{settings.model!r}"
            )
        elif settings.api_key:
            hint = f"check the key in ${settings.key_env}"
        else:
            hint = f"set ${settings.key_env} (teacher.key_env names another variable)"
        message = f"the teacher at {settings.url} (model {settings.model!r}) refused us: {problem}"
        return TeacherError(message, hint=hint, fatal=True)

    def _exhausted(self, failure: _Retry, tries: int) -> TeacherError:
        where = f"the teacher at {self.settings.url}"
        if failure.unreachable:
            return TeacherError(
                f"{where} cannot be reached ({tries} tries; last: {failure.problem})",
                hint="start the server or fix --teacher-url; a rerun goes on where this one stopped",
                fatal=True,
            )
        return TeacherError(f"{where} failed a request {tries} times; last: {failure.problem}")


def _server_message(response: httpx.Response) -> str:
    """The message of OpenAI's error shape (``{"error": {"message": ...}}``), when the body has one."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    message = error.get("message") if isinstance(error, dict) else error
    return f": {str(message)[:200]}" if message else ""


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds: a number of seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
