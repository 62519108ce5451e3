# -*- test-case-name: tests.test_api_cost -*-
"""
What a request cost: tokens from the provider's usage (or an estimate,
marked as such), priced by the target's C{pricing} or a built-in table.
"""

# US dollars per million tokens (input, output), by model name prefix;
# the longest matching prefix wins.  Public list prices.
PRICES = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "o1-mini": (1.10, 4.40),
    "o1": (15.00, 60.00),
    "o3-mini": (1.10, 4.40),
    "o3": (2.00, 8.00),
    "o4-mini": (1.10, 4.40),
    "text-embedding-3-small": (0.02, 0.0),
    "text-embedding-3-large": (0.13, 0.0),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-opus-4": (15.00, 75.00),
    "claude-3-haiku": (0.25, 1.25),
    "claude-3-opus": (15.00, 75.00),
}

# Roughly four characters a token in English and code.
_CHARS_PER_TOKEN = 4


# Beyond any real answer's usage: a larger figure is a provider's mistake
# (and 1e308 tokens would cost an infinity the journal cannot hold).
_MOST_TOKENS = 10 ** 9


def tokenCount(value):
    """
    A provider's token figure if it is one: a whole number from 0 (not a
    bool, a string or a float) within reason; else L{None}.
    """
    if type(value) is int and 0 <= value <= _MOST_TOKENS:
        return value
    return None


def usageTokens(usage, inputKey, outputKey, both=False):
    """
    C{{"input": n, "output": n}} of a provider's usage object, leaving out
    what is not a token count (or, C{both}, giving it as L{None}); L{None}
    when neither is.
    """
    if not isinstance(usage, dict):
        return None
    tokens = {"input": tokenCount(usage.get(inputKey)),
              "output": tokenCount(usage.get(outputKey))}
    if tokens["input"] is None and tokens["output"] is None:
        return None
    if both:
        return tokens
    return {name: n for name, n in tokens.items() if n is not None}


def estimateTokens(texts):
    return sum(len(text) for text in texts) // _CHARS_PER_TOKEN + (
        1 if any(texts) else 0)


def pricesFor(model, pricing=None):
    """
    @param pricing: the target's L{Pricing}, which wins over the table.
    @return: C{(input, output)} dollars per million tokens, or L{None}.
    """
    if pricing is not None:
        return pricing.input_per_million, pricing.output_per_million
    best = None
    for prefix in PRICES:
        if (model or "").startswith(prefix) and (
                best is None or len(prefix) > len(best)):
            best = prefix
    return PRICES[best] if best else None


def costOf(tokens, model, pricing=None):
    """
    @param tokens: C{{"input": n, "output": n}} (either may be missing).
    @return: the cost in US dollars, rounded to a millionth, or L{None}
        when the model has no known price.
    """
    prices = pricesFor(model, pricing)
    if prices is None or not tokens:
        return None
    cost = ((tokens.get("input") or 0) * prices[0] +
            (tokens.get("output") or 0) * prices[1]) / 1e6
    return round(cost, 6)
