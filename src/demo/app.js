// First-party site script: stays untouched.
document.documentElement.dataset.app = "ready";
