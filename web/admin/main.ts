// The back office's web app: served only by the operator program (`coss admin serve`), which
// signs every call to the platform. Amounts stay decimal strings from the server.
import { createApp } from 'vue'
import App from './App.vue'
import './admin.css'

createApp(App).mount('#app')
