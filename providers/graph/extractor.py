"""Optional extraction of entities and relationships from raw text by an
OpenAI-compatible chat endpoint (vLLM, OpenAI, Ollama serve one).

The model is asked for one JSON object ``{"entities": [{"name",
"entity_type"}], "relationships": [{"source", "target", "type"}]}``;
anything else in its answer is a `ProviderCallError`, never a half-read
graph. Without an extractor configured the manager works on what callers
supply, which is the default here: no model can be reached from this machine.
"""

from __future__ import annotations

import json
import re
from typing import Any

from providers.errors import ConfigError, ProviderCallError
from providers.interfaces.graph_engines import Entity, Relationship

PROMPT = (
    "Extract the entities and the relationships between them from the user's text. Answer with one JSON "
    'object only: {"entities": [{"name": str, "entity_type": str}], "relationships": [{"source": entity name, '
    '"target": entity name, "type": UPPER_SNAKE_CASE}]}. Entity types are single words in PascalCase.'
)


async def extract(config: dict[str, Any], content: str) -> tuple[list[Entity], list[Relationship]]:
    import httpx

    base_url, model = config.get("base_url"), config.get("model")
    if not base_url or not model:
        raise ConfigError("needs base_url and model", "config.extractor")
    headers = {"Authorization": f"Bearer {config['api_key']}"} if config.get("api_key") else {}
    body = {"model": model, "temperature": 0, "response_format": {"type": "json_object"},
            "messages": [{"role": "system", "content": PROMPT}, {"role": "user", "content": content}]}
    try:
        async with httpx.AsyncClient(timeout=float(config.get("timeout_s", 60))) as client:
            r = await client.post(base_url.rstrip("/") + "/chat/completions", json=body, headers=headers)
        r.raise_for_status()
        text = r.json()["choices"][0]["message"]["content"]
    except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
        # the message names the error type only: a URL or header could carry the key
        raise ProviderCallError(f"extractor call failed: {type(exc).__name__}") from None
    return parse_extraction(text)


def parse_extraction(text: str) -> tuple[list[Entity], list[Relationship]]:
    """The entities and relationships in a model's JSON answer (code fences tolerated)."""
    match = re.search(r"\{.*\}", text or "", re.S)
    try:
        data = json.loads(match.group(0) if match else "")
    except ValueError:
        raise ProviderCallError("the extractor's answer is not JSON") from None
    if not isinstance(data, dict):
        raise ProviderCallError("the extractor's answer is not a JSON object")
    entities, relationships = [], []
    for e in data.get("entities") or []:
        if isinstance(e, dict) and isinstance(e.get("name"), str) and e["name"].strip():
            etype = re.sub(r"[^A-Za-z0-9_]", "", str(e.get("entity_type") or "Thing")) or "Thing"
            entities.append(Entity(id="", name=e["name"].strip(), entity_type=etype if etype[0].isalpha() else "Thing"))
    for r in data.get("relationships") or []:
        if isinstance(r, dict) and all(isinstance(r.get(k), str) and r[k].strip() for k in ("source", "target", "type")):
            rtype = re.sub(r"[^A-Za-z0-9_]", "_", r["type"].strip().upper()).strip("_") or "RELATED_TO"
            relationships.append(Relationship(id="", source_id=r["source"].strip(), target_id=r["target"].strip(),
                                              relationship_type=rtype if rtype[0].isalpha() else "RELATED_TO"))
    return entities, relationships
