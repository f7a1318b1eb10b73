"""The theme tokens: one source of truth for every widget and the site's embeds.

Rendered to CSS custom properties (`tokens.css`); widget scripts read them from CSS,
so no colour is written twice.
"""

COLORS = {
    "bg": "#0a0a0a",
    "panel": "#141414",
    "border": "#2a2a2a",
    "text": "#e5e7eb",
    "hbm": "#ef4444",  # slow, off-chip memory
    "sram": "#10b981",  # fast, on-chip memory
    "active": "#3b82f6",  # the current focus of the explanation
    "muted": "#6b7280",
    # Light tints for text on dark panels, and the panel shades between bg and panel.
    "hbm-text": "#fca5a5",
    "sram-text": "#6ee7b7",
    "active-text": "#93c5fd",
    "highlight": "#fde68a",
    "subtle": "#9ca3af",
    "well": "#101010",
    "raised": "#1c1c1c",
    "head-0": "#f59e0b",
    "head-1": "#8b5cf6",
    "head-2": "#ec4899",
    "head-3": "#06b6d4",
}

MOTION = {
    # expo-out: fast start, gentle settle
    "ease": "cubic-bezier(0.22, 1, 0.36, 1)",
    "duration-ms": "420",
}


def tokens_css() -> str:
    lines = [f"  --viz-{name}: {value};" for name, value in COLORS.items()]
    lines += [f"  --viz-{name}: {value};" for name, value in MOTION.items()]
    return ":root {\n" + "\n".join(lines) + "\n}\n"
